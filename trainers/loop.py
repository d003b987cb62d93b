"""The training loop every trainer runs, one ``Task`` (``task.py``) at a time.

The loop owns what is the same for every task: the device and, under ``torchrun``, the process
group (``distributed.py``); autocast (bf16 on CPUs with native bf16 too), channels_last and
torch.compile (what each buys on a CPU: benchmarks/results/train-speed-*); the optimiser; per-step seeding, so a
resumed run repeats the uninterrupted one exactly; the progress bar; the loss log (``losslog.py``);
periodic atomic checkpoints, resume, and Ctrl-C (the last state is saved before the interrupt
propagates).
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rtstyle.checkpoint import load_checkpoint, read_metadata, restore_optimizer, save_checkpoint
from rtstyle.cpu_memory import keep_freed_memory
from rtstyle.dtypes import torch_dtype
from rtstyle.errors import InputError, Interrupted
from rtstyle.frames import to_float
from rtstyle.losses import PerceptualLoss
from rtstyle.nets import build_model, config_to_dict
from rtstyle.progress import progress as progress_bar
from rtstyle.sysinfo import cpu_has_native_bf16, cpu_model
from rtstyle.trainconfig import COMPILE_AUTO_MIN_STEPS, TrainConfig, sidecar
from rtstyle.vgg import LAYER_INDEX, load_vgg16

from . import distributed
from .data import InfiniteSampler, RandomCrops, ScanResult, scan_images
from .losslog import LossLog
from .task import Task


@dataclass
class TrainResult:
    checkpoint: Path
    csv: Path
    plot: Path | None
    steps: int
    last_losses: dict[str, float]
    skipped_images: int
    seconds: float


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``--amp`` on ``device`` (None: no autocast).

    auto on a CPU: bf16 where the CPU computes it natively (AMX or AVX512-BF16: oneDNN's bf16
    convolutions run about twice as fast as fp32 there), fp32 elsewhere (emulated bf16 is slower)."""
    if mode == "off":
        return None
    if mode == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    return torch_dtype(mode)


def use_compile(mode: str, device: torch.device, steps_left: int) -> bool:
    """``--compile``: auto compiles CPU runs long enough to repay the compile time. Inductor fuses
    the memory-bound layers (InstanceNorm, padding, ReLU and their backward passes), which is most of
    a step's time that is not a convolution."""
    if mode == "auto":
        return device.type == "cpu" and steps_left >= COMPILE_AUTO_MIN_STEPS
    return mode == "on"


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_model()}, {os.cpu_count()} cores)"


def train(cfg: TrainConfig, task: Task) -> TrainResult:
    """Run (or resume) training; returns where everything was written."""
    cfg.validate()
    if task.needs_images and cfg.data is None:
        raise InputError(f"training a {task.kind!r} network needs --data, a folder of training images")
    started, cpu_started = time.perf_counter(), time.process_time()
    dist = distributed.setup(cfg.device)
    device = dist.device
    if cfg.max_cpu_seconds is not None and dist.world_size > 1:
        # Each rank would reach the budget at another step, and DDP would wait for the others forever.
        raise InputError("--max-cpu-seconds budgets one process; run it without torchrun")
    if device.type == "cpu":
        keep_freed_memory()  # no page faults per step (rtstyle/cpu_memory.py)
    torch.manual_seed(cfg.seed + dist.rank)
    scan = scan_images(cfg.data) if task.needs_images else None

    net = build_model(task.model_config).to(device)
    task.setup_model(net)
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
    start_step, prior_seconds, prior_cpu, lr_schedule = 0, 0.0, 0.0, [[0, cfg.lr]]
    if cfg.resume is not None:
        start_step = _resume(cfg.resume, task, net, optimizer)
        # The restored optimiser state carries the old run's learning rate; this run's --lr wins, so
        # a resume can lower it (a step decay). The schedule [[from_step, lr], ...] goes in the metadata.
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr
        prior = read_metadata(cfg.resume).get("train", {})
        lr_schedule = prior.get("lr_schedule", [[0, prior.get("lr", cfg.lr)]])
        if lr_schedule[-1][1] != cfg.lr:
            lr_schedule = [*lr_schedule, [start_step, cfg.lr]]
        # Training time adds up over resumed runs, so the checkpoint says what the whole schedule cost.
        prior_seconds = float(prior.get("seconds", 0.0))
        prior_cpu = float(prior.get("cpu_seconds", 0.0))
        if start_step >= cfg.iterations:
            raise InputError(f"--resume checkpoint is already at step {start_step} >= --iterations {cfg.iterations}")
    # channels_last on CPUs too: oneDNN's convolutions work in NHWC, so NCHW tensors are reordered
    # around every conv (measured: 8% of a bf16 step on a 2-core Xeon).
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)
    compiled = use_compile(cfg.compile, device, cfg.iterations - start_step)
    if compiled:
        net.compile()  # in place: parameter names (the checkpoint's keys) stay as they are
    model = dist.wrap(net)

    layers = (*task.loss_config.content_layers, *task.loss_config.style_layers)
    deepest = max(layers, key=LAYER_INDEX.__getitem__)
    vgg = load_vgg16(cfg.vgg_weights, last_layer=deepest, device=device).to(memory_format=layout)
    loss_fn = PerceptualLoss(vgg, task.loss_config)
    task.setup_loss(loss_fn, device)
    if compiled:
        loss_fn.compile()

    loader = _loader(cfg, task, scan, device, start_step, dist.rank) if scan is not None else None
    autocast = amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast == torch.float16)

    meta = {
        **task.meta,
        "task": task.kind,
        "name": cfg.name or Path(cfg.out).name.removesuffix(".safetensors"),
        "loss": task.loss_config.to_dict(),
        "vgg_source": vgg.source,
    }
    csv_path, plot_path = sidecar(cfg.out, ".losses.csv"), sidecar(cfg.out, ".losses.png")
    log = LossLog(csv_path, start_step) if dist.is_main else None
    step, terms_f = start_step, {}

    def cpu_seconds() -> float:
        return prior_cpu + time.process_time() - cpu_started

    bar = _progress(cfg, start_step, prior_cpu, dist.is_main)

    def save(final: bool) -> None:
        if not dist.is_main:
            return
        train_meta = {
            "iterations": step, "target_iterations": cfg.iterations, "batch_size": cfg.batch_size,
            "world_size": dist.world_size, "image_size": task.crop_size, "lr": cfg.lr, "lr_schedule": lr_schedule,
            "seed": cfg.seed,
            "amp": str(autocast).removeprefix("torch.") if autocast else "off", "compiled": compiled,
            "channels_last": cfg.channels_last,
            "threads": torch.get_num_threads() if device.type == "cpu" else None,
            "device": device_description(device),
            "data": _data_meta(cfg, scan),
            "torch": torch.__version__, "finished": final,
            **({"max_cpu_seconds": cfg.max_cpu_seconds} if cfg.max_cpu_seconds is not None else {}),
            "seconds": round(prior_seconds + time.perf_counter() - started, 1), "cpu_seconds": round(cpu_seconds(), 1),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        save_checkpoint(cfg.out, net, {**meta, "train": train_meta}, optimizer=optimizer,
                        style_target=task.style_target)
        if log is not None:
            log.plot(plot_path, title=meta["name"])

    try:
        model.train()
        batches = iter(loader) if loader is not None else None
        t_last, n_last = time.perf_counter(), step
        while step < cfg.iterations:
            # Each step's randomness (perturbations, noise inputs) is a function of (seed, rank, step)
            # alone, so a resumed run repeats the uninterrupted one exactly.
            torch.manual_seed(hash((cfg.seed, dist.rank, step)) & 0x7FFF_FFFF_FFFF_FFFF)
            images = None
            if batches is not None:
                images = to_float(next(batches).to(device, non_blocking=True))
                images = images.contiguous(memory_format=layout)
            net_in, target = task.make_batch(images, cfg.batch_size, device)
            with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
                terms = task.loss(model, net_in, target, loss_fn)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms.total).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            # The CPU budget counts set-up too; it is checked after each step, so every run makes one.
            used = cpu_seconds() if cfg.max_cpu_seconds is not None else 0.0
            spent = cfg.max_cpu_seconds is not None and used >= cfg.max_cpu_seconds
            if step % cfg.log_every == 0 or step == cfg.iterations or spent:
                terms_f = terms.as_floats()
                now = time.perf_counter()
                rate = (step - n_last) / max(now - t_last, 1e-9)
                t_last, n_last = now, step
                if log is not None:
                    log.write(step, terms_f, rate, now - started, cpu_seconds())
                losses = {("loss" if k == "total" else k): f"{v:.3g}" for k, v in terms_f.items()}
                bar.set_postfix({"it": step, **losses} if cfg.max_cpu_seconds is not None else losses, refresh=False)
            # A budgeted run's bar counts CPU seconds: its nominal --iterations is a ceiling, not an ETA.
            bar.update(1 if cfg.max_cpu_seconds is None else min(used, cfg.max_cpu_seconds) - bar.n)
            if spent:
                break
            if step % cfg.checkpoint_every == 0 and step < cfg.iterations:
                save(final=False)
    except KeyboardInterrupt:
        save(final=False)
        raise Interrupted(f"training interrupted at step {step}; resume with --resume {cfg.out}") from None
    finally:
        bar.close()
    save(final=True)
    dist.close()
    skipped = len(scan.skipped) + len(loader.dataset.failed) if scan is not None else 0
    return TrainResult(Path(cfg.out), csv_path, plot_path if dist.is_main else None, step, terms_f, skipped,
                       time.perf_counter() - started)


def _data_meta(cfg: TrainConfig, scan: ScanResult | None) -> dict | None:
    if scan is None:
        return None
    return {"folder": Path(cfg.data).name, "images": len(scan.files), "skipped": len(scan.skipped)}


def _loader(cfg: TrainConfig, task: Task, scan: ScanResult, device: torch.device, start_step: int, rank: int):
    """Endless random crops of the training images, resuming the sampler at ``start_step``."""
    workers = cfg.num_workers if cfg.num_workers is not None else (4 if device.type == "cuda" else 0)
    return torch.utils.data.DataLoader(
        RandomCrops(scan.files, task.crop_size),
        batch_size=cfg.batch_size,
        sampler=InfiniteSampler(len(scan.files), cfg.seed, cfg.batch_size, start_step, rank),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def _resume(path: Path, task: Task, net: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    ckpt = load_checkpoint(path, task=task.kind)
    if config_to_dict(ckpt.config) != config_to_dict(task.model_config):
        raise InputError(f"--resume {path} holds a {ckpt.config}, but this run builds {task.model_config}")
    if "style_image" in task.meta and ckpt.meta.get("style_image", {}).get("sha256") != task.meta["style_image"].get(
            "sha256"):
        raise InputError(f"--resume {path} was trained on a different style image "
                         f"({ckpt.meta.get('style_image', {}).get('name')})")
    net.load_state_dict(ckpt.model.state_dict(), strict=True)
    restore_optimizer(ckpt, optimizer)
    return int(ckpt.meta["train"]["iterations"])


def _progress(cfg: TrainConfig, start: int, start_cpu: float, enabled: bool):
    # cfg.progress: a bool or a mode of rtstyle.progress (bar on a terminal, plain lines in a log).
    # With --max-cpu-seconds the budget, not the iteration ceiling, says when the run ends.
    mode = cfg.progress if enabled else "none"
    if cfg.max_cpu_seconds is not None:
        return progress_bar(cfg.max_cpu_seconds, f"train {Path(cfg.out).name}", "CPU second",
                            initial=min(start_cpu, cfg.max_cpu_seconds), mode=mode, leave=True)
    return progress_bar(cfg.iterations, f"train {Path(cfg.out).name}", "it", initial=start, mode=mode, leave=True)
