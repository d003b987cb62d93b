"""The training loop shared by the style and super-resolution trainers.

One loop, parameterised by a ``TaskSpec`` (which network, which loss, how a batch of crops
becomes (network input, loss target)). It handles devices, AMP and channels_last on CUDA,
DistributedDataParallel under ``torchrun`` (NCCL on GPUs, gloo on CPU), the progress bar,
a CSV of losses and its PNG plot, periodic atomic checkpoints, resume, and Ctrl-C (the last
state is saved before the interrupt propagates).
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

from rtstyle.checkpoint import load_checkpoint, restore_optimizer, save_checkpoint
from rtstyle.cpu_memory import keep_freed_memory
from rtstyle.errors import InputError, Interrupted
from rtstyle.frames import to_float
from rtstyle.losses import LossConfig, PerceptualLoss
from rtstyle.nets import ModelConfig, build_model, config_to_dict
from rtstyle.progress import progress as progress_bar
from rtstyle.vgg import LAYER_INDEX, load_vgg16

from .data import InfiniteSampler, RandomCrops, scan_images

log = logging.getLogger(__name__)

AMP_MODES = ("auto", "off", "fp16", "bf16")


@dataclass(kw_only=True)
class TrainConfig:
    """Options common to every trainer (the CLI flags of ``rtstyle train``)."""

    data: Path | None  # None only for tasks that need no images (texture synthesis)
    out: Path
    iterations: int = 2000
    batch_size: int = 4
    image_size: int = 256
    lr: float = 1e-3
    device: str = "auto"
    seed: int = 42
    resume: Path | None = None
    checkpoint_every: int = 500
    log_every: int = 10
    num_workers: int | None = None  # None: 0 on CPU (two cores here), 4 on CUDA
    amp: str = "auto"  # auto: bf16/fp16 autocast on CUDA, off on CPU
    vgg_weights: Path | None = None
    name: str | None = None
    progress: bool | str = True  # or a mode of rtstyle.progress: auto, bar, plain, json, none

    def validate(self) -> None:
        for name in ("iterations", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 32:
            raise InputError(f"--image-size must be >= 32, got {self.image_size}")
        if self.lr <= 0:
            raise InputError(f"--lr must be > 0, got {self.lr}")
        if self.amp not in AMP_MODES:
            raise InputError(f"--amp must be one of {AMP_MODES}, got {self.amp!r}")
        if Path(self.out).suffix != ".safetensors":
            raise InputError(f"--out must end in .safetensors, got {self.out}")
        if self.resume is not None and not Path(self.resume).is_file():
            raise InputError(f"--resume checkpoint not found: {self.resume}")


class ExtraLoss(Protocol):
    """A loss term on extra network inputs derived from each batch (e.g. ``stability.StabilityLoss``).

    The extra inputs run through the network in the same forward pass as the batch, so
    DistributedDataParallel sees one forward per backward; the term is logged under ``name``.
    """

    name: str

    def inputs(self, net_in: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """(extra network inputs, state handed back to ``__call__``)."""

    def __call__(self, output: torch.Tensor, extra_output: torch.Tensor, state: Any) -> torch.Tensor:
        """The weighted term from the batch's outputs and the extra inputs' outputs."""


@dataclass
class TaskSpec:
    """What differs between trainers."""

    task: str  # checkpoint.TASKS: "style" | "sr" | "texture"
    model_config: ModelConfig
    loss_config: LossConfig
    crop_size: int
    # float NCHW [0,1] crops on the device -> (network input, content/HR target); None when
    # ``make_batch`` (below) makes the batches instead.
    prepare: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None
    setup_loss: Callable[[PerceptualLoss, torch.device], None] = lambda loss, device: None
    meta: dict[str, Any] = field(default_factory=dict)
    extra_loss: ExtraLoss | None = None
    # Multi-style trainers (AdaIN, StyleBank): a loss other than "perceptual loss of model(input)
    # against target". Called as objective(model, net_in, target, loss_fn) -> LossTerms; ``model``
    # may be DDP-wrapped, so it calls ``model(...)`` for the trained forward pass.
    objective: Callable[..., Any] | None = None
    # Tasks whose input is not a photo (texture synthesis: noise): (batch size, device) ->
    # (network input, loss target). The run then needs no --data and loads no images.
    make_batch: Callable[[int, torch.device], tuple[torch.Tensor, torch.Tensor | None]] | None = None
    # Runs on the fresh network before the optimiser is made (e.g. load and freeze shared weights);
    # the optimiser then trains the parameters that still require gradients.
    setup_model: Callable[[nn.Module], None] = lambda net: None
    # One-style tasks: the style image as the loss saw it (uint8 HWC), stored in the checkpoint.
    style_target: np.ndarray | None = None


@dataclass
class TrainResult:
    checkpoint: Path
    csv: Path
    plot: Path | None
    steps: int
    last_losses: dict[str, float]
    skipped_images: int
    seconds: float


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _setup_device(requested: str) -> _Dist:
    """Resolve the device; under torchrun (WORLD_SIZE > 1) join the process group."""
    from rtstyle.engine import resolve_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(requested)
    if world <= 1:
        return _Dist(device=device)
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), device)


def _amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[mode]


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def sidecar(out: Path, suffix: str) -> Path:
    """``style.safetensors`` -> ``style.losses.csv`` etc., next to the checkpoint."""
    return out.with_name(out.name.removesuffix(".safetensors") + suffix)


def train(cfg: TrainConfig, spec: TaskSpec) -> TrainResult:
    """Run (or resume) training; returns where everything was written."""
    cfg.validate()
    if (spec.prepare is None) == (spec.make_batch is None):
        raise ValueError(f"TaskSpec {spec.task!r}: give exactly one of prepare and make_batch")
    if spec.make_batch is None and cfg.data is None:
        raise InputError(f"training a {spec.task!r} network needs --data, a folder of training images")
    started = time.perf_counter()
    dist = _setup_device(cfg.device)
    device = dist.device
    if device.type == "cpu":
        keep_freed_memory()  # no page faults per step (rtstyle/cpu_memory.py)
    torch.manual_seed(cfg.seed + dist.rank)
    scan = scan_images(cfg.data) if spec.make_batch is None else None

    net = build_model(spec.model_config).to(device)
    spec.setup_model(net)
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
    start_step = 0
    if cfg.resume is not None:
        start_step = _resume(cfg.resume, spec, net, optimizer)
        if start_step >= cfg.iterations:
            raise InputError(f"--resume checkpoint is already at step {start_step} >= --iterations {cfg.iterations}")
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    model: nn.Module = net
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    layers = (*spec.loss_config.content_layers, *spec.loss_config.style_layers)
    deepest = max(layers, key=LAYER_INDEX.__getitem__)
    vgg = load_vgg16(cfg.vgg_weights, last_layer=deepest, device=device)
    if device.type == "cuda":
        vgg = vgg.to(memory_format=torch.channels_last)
    loss_fn = PerceptualLoss(vgg, spec.loss_config)
    spec.setup_loss(loss_fn, device)

    loader = _loader(cfg, spec, scan, device, start_step, dist.rank) if scan is not None else None
    amp_dtype = _amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    meta = {
        **spec.meta,
        "task": spec.task,
        "name": cfg.name or Path(cfg.out).name.removesuffix(".safetensors"),
        "loss": spec.loss_config.to_dict(),
        "vgg_source": vgg.source,
    }
    csv_path, plot_path = sidecar(cfg.out, ".losses.csv"), sidecar(cfg.out, ".losses.png")
    logger = _LossLog(csv_path, start_step) if dist.is_main else None
    bar = _progress(cfg, start_step, dist.is_main)
    step, terms_f = start_step, {}

    def save(final: bool) -> None:
        if not dist.is_main:
            return
        train_meta = {
            "iterations": step, "target_iterations": cfg.iterations, "batch_size": cfg.batch_size,
            "world_size": dist.world_size, "image_size": spec.crop_size, "lr": cfg.lr, "seed": cfg.seed,
            "amp": str(amp_dtype).removeprefix("torch.") if amp_dtype else "off",
            "device": device_description(device),
            "data": {"folder": Path(cfg.data).name, "images": len(scan.files), "skipped": len(scan.skipped)}
            if scan is not None else None,
            "torch": torch.__version__, "finished": final,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        save_checkpoint(cfg.out, net, {**meta, "train": train_meta}, optimizer=optimizer,
                        style_target=spec.style_target)
        if logger is not None:
            logger.plot(plot_path, title=meta["name"])

    try:
        model.train()
        batches = iter(loader) if loader is not None else None
        t_last, n_last = time.perf_counter(), step
        while step < cfg.iterations:
            # Each step's randomness (perturbations, noise inputs) is a function of (seed, rank, step)
            # alone, so a resumed run repeats the uninterrupted one exactly.
            torch.manual_seed(hash((cfg.seed, dist.rank, step)) & 0x7FFF_FFFF_FFFF_FFFF)
            if batches is None:
                net_in, target = spec.make_batch(cfg.batch_size, device)
            else:
                images = to_float(next(batches).to(device, non_blocking=True))
                if device.type == "cuda":
                    images = images.contiguous(memory_format=torch.channels_last)
                net_in, target = spec.prepare(images)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                if spec.objective is not None:
                    terms = spec.objective(model, net_in, target, loss_fn)
                else:
                    terms = _losses(model, net_in, target, loss_fn, spec.extra_loss)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms.total).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            if step % cfg.log_every == 0 or step == cfg.iterations:
                terms_f = terms.as_floats()
                now = time.perf_counter()
                rate = (step - n_last) / max(now - t_last, 1e-9)
                t_last, n_last = now, step
                if logger is not None:
                    logger.write(step, terms_f, rate, now - started)
                bar.set_postfix({k: f"{v:.3g}" for k, v in terms_f.items()}, refresh=False)
            bar.update(1)
            if step % cfg.checkpoint_every == 0 and step < cfg.iterations:
                save(final=False)
    except KeyboardInterrupt:
        save(final=False)
        raise Interrupted(f"training interrupted at step {step}; resume with --resume {cfg.out}") from None
    finally:
        bar.close()
    save(final=True)
    if dist.world_size > 1:
        import torch.distributed as tdist

        tdist.destroy_process_group()
    skipped = len(scan.skipped) + len(loader.dataset.failed) if scan is not None else 0
    return TrainResult(Path(cfg.out), csv_path, plot_path if dist.is_main else None, step, terms_f, skipped,
                       time.perf_counter() - started)


def _loader(cfg: TrainConfig, spec: TaskSpec, scan, device: torch.device, start_step: int, rank: int):
    """Endless random crops of the training images, resuming the sampler at ``start_step``."""
    workers = cfg.num_workers if cfg.num_workers is not None else (4 if device.type == "cuda" else 0)
    return torch.utils.data.DataLoader(
        RandomCrops(scan.files, spec.crop_size),
        batch_size=cfg.batch_size,
        sampler=InfiniteSampler(len(scan.files), cfg.seed, cfg.batch_size, start_step, rank),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def _losses(model: nn.Module, net_in: torch.Tensor, target: torch.Tensor, loss_fn: PerceptualLoss,
            extra: ExtraLoss | None):
    """The perceptual loss of the batch, plus the extra term when the task has one."""
    if extra is None:
        return loss_fn(model(net_in), target)
    extra_in, state = extra.inputs(net_in)
    both = model(torch.cat([net_in, extra_in.to(net_in.dtype)]))
    output, extra_output = both[:len(net_in)], both[len(net_in):]
    terms = loss_fn(output, target)
    term = extra(output, extra_output, state)
    terms.terms[extra.name] = term
    terms.total = terms.total + term
    return terms


def _resume(path: Path, spec: TaskSpec, net: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    ckpt = load_checkpoint(path, task=spec.task)
    if config_to_dict(ckpt.config) != config_to_dict(spec.model_config):
        raise InputError(f"--resume {path} holds a {ckpt.config}, but this run builds {spec.model_config}")
    for key in ("style_image",):
        if key in spec.meta and ckpt.meta.get(key, {}).get("sha256") != spec.meta[key].get("sha256"):
            raise InputError(f"--resume {path} was trained on a different style image ({ckpt.meta.get(key, {}).get('name')})")
    net.load_state_dict(ckpt.model.state_dict(), strict=True)
    restore_optimizer(ckpt, optimizer)
    return int(ckpt.meta["train"]["iterations"])


def _progress(cfg: TrainConfig, start: int, enabled: bool):
    # cfg.progress: a bool or a mode of rtstyle.progress (bar on a terminal, plain lines in a log)
    return progress_bar(cfg.iterations, f"train {Path(cfg.out).name}", "it", initial=start,
                    mode=cfg.progress if enabled else "none", leave=True)


class _LossLog:
    """CSV of loss terms per logged step; on resume, rows after the resumed step are dropped."""

    FIELDS = ("step", "total", "content", "style", "tv", "pixel", "stability", "it_per_s", "elapsed_s")

    def __init__(self, path: Path, start_step: int):
        self.path = path
        rows = []
        if start_step > 0 and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, self.FIELDS)
            w.writeheader()
            w.writerows(rows)

    def write(self, step: int, terms: dict[str, float], rate: float, elapsed: float) -> None:
        row = {"step": step, **{k: f"{v:.6g}" for k, v in terms.items()}, "it_per_s": f"{rate:.3f}",
               "elapsed_s": f"{elapsed:.1f}"}
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.FIELDS).writerow(row)

    def plot(self, out: Path, title: str) -> None:
        plot_losses(self.path, out, title)


def plot_losses(csv_path: Path, out: Path, title: str) -> Path:
    """Loss curves (log scale) from a trainer's CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rtstyle.fsutil import atomic_path

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = [int(r["step"]) for r in rows]
    for name in ("total", "content", "style", "tv", "pixel", "stability"):
        values = [float(r[name]) for r in rows if r.get(name)]
        if values and len(values) == len(steps) and any(v > 0 for v in values):
            ax.plot(steps, values, label=name, linewidth=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("weighted loss")
    ax.set_title(f"{title}: training losses")
    ax.grid(True, which="both", alpha=0.3)
    if steps:
        ax.legend()
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out


def config_summary(cfg: Any) -> dict[str, Any]:
    """JSON-safe dict of a config dataclass (paths as strings)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
