"""Optimisation-based stylization (Gatys et al. 2016): optimise the pixels of one image.

The objective is the trainers' own ``PerceptualLoss`` (same VGG16, same Gram, content and TV
terms, same weights by default), so an optimised image and a feed-forward output are scored
on exactly the same scale -- which is what ``rtstyle eval quality`` relies on.

Conventions, chosen so L-BFGS and Adam are counted alike:

* **Pixels** are optimised directly as float NCHW in [0, 1] (the frame convention) and
  **clamped to [0, 1] after every step** (projected gradient descent). A sigmoid/tanh
  parametrisation would change the objective's curvature; clamping keeps the optimised
  variable the image the network is compared with.
* **One iteration is one optimiser step with exactly one loss + gradient evaluation.**
  L-BFGS runs as ``torch.optim.LBFGS(max_iter=1, line_search_fn=None)`` stepped once per
  iteration: its curvature history persists across steps, and with no line search each step
  evaluates the closure once. ``history[k]`` is the objective of the image after ``k``
  iterations (``history[0]`` is the initial image), so ``history`` has ``iterations + 1``
  entries and ``seconds[k]`` is the time taken to produce image ``k``.

A ``stop`` event (set by SIGINT/SIGTERM/SIGHUP through ``signals.interrupt_on_signals``, as for
``stylize``) ends the run after the current iteration: ``optimize_image`` then writes the image
reached so far and raises ``Interrupted`` naming it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .choices import INITS, OPTIMIZERS
from .cpu_memory import keep_freed_memory
from .errors import InputError, Interrupted, OutputError
from .frames import float_to_numpy, load_image, numpy_to_float, save_image
from .losses import LossConfig, PerceptualLoss
from .outputs import OutputPolicy
from .progress import progress as progress_bar
from .vgg import LAYER_INDEX, load_vgg16

DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}  # Adam's step is in [0, 1] pixel units


@dataclass
class OptimizerSettings:
    """How the pixels are optimised; shared by ``rtstyle optimize`` and ``rtstyle eval quality``."""

    optimizer: str = "lbfgs"
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    init: str = "content"  # content | noise (uniform white noise) | mix
    noise_ratio: float = 0.6  # mix: (1 - r) * content + r * noise
    seed: int = 4  # of the noise

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"--optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.init not in INITS:
            raise InputError(f"--init must be one of {INITS}, got {self.init!r}")
        if not 0.0 <= self.noise_ratio <= 1.0:
            raise InputError(f"--noise-ratio must be in [0, 1], got {self.noise_ratio}")
        if self.lr is not None and self.lr <= 0:
            raise InputError(f"--lr must be > 0, got {self.lr}")

    @property
    def step_size(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]


@dataclass
class Trace:
    """Objective per iteration (``iterations + 1`` entries) and the final float image."""

    history: list[dict[str, float]]
    seconds: list[float]
    final: torch.Tensor  # (1, 3, H, W) float [0, 1], on the optimisation device
    interrupted: bool = False  # ``stop`` ended it early: ``len(history) - 1`` iterations were done

    @property
    def totals(self) -> list[float]:
        return [h["total"] for h in self.history]


# on_iteration(k, image): called after iteration k with the (clamped) image; may save it.
IterationCallback = Callable[[int, torch.Tensor], None]


def initial_image(content: torch.Tensor, settings: OptimizerSettings) -> torch.Tensor:
    """The starting point: the content image, white noise, or a blend of both."""
    if settings.init == "content":
        return content.detach().clone()
    gen = torch.Generator(device="cpu").manual_seed(settings.seed)
    noise = torch.rand(content.shape, generator=gen).to(content.device, content.dtype)
    ratio = 1.0 if settings.init == "noise" else settings.noise_ratio
    return (1.0 - ratio) * content.detach() + ratio * noise


def optimize_pixels(
    loss_fn: PerceptualLoss,
    content: torch.Tensor,
    iterations: int,
    settings: OptimizerSettings,
    *,
    on_iteration: IterationCallback | None = None,
    progress: bool | str = False,  # or a mode of rtstyle.progress
    desc: str = "optimize",
    stop_below: float | None = None,
    bar=None,  # a progress object to advance instead of a bar of its own (one bar over many runs)
    stop: threading.Event | None = None,
) -> Trace:
    """Minimise ``loss_fn(image, content)`` over the pixels of ``image``; ``set_style`` done.
    ``stop_below``: stop early once an image's objective is at or below it (``eval quality
    --stop-at-match`` needs no more). ``stop``: end after the iteration in progress when it is set
    (``Trace.interrupted``)."""
    settings.validate()
    if iterations < 1:
        raise InputError(f"--iterations must be >= 1, got {iterations}")
    content = content.detach()
    start = time.perf_counter()
    # Contiguous: frames arrive as permuted NHWC views and LBFGS flattens gradients with .view.
    pixels = initial_image(content, settings).contiguous().requires_grad_(True)
    optimizer = _make_optimizer(pixels, settings)
    history: list[dict[str, float]] = []
    seconds = [time.perf_counter() - start]
    evaluated: list[dict[str, float]] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        terms = loss_fn(pixels, content)
        terms.total.backward()
        evaluated.append(terms.as_floats())
        return terms.total

    own_bar = bar is None
    bar = progress_bar(iterations, desc, "it", mode=progress, leave=True) if own_bar else bar
    interrupted = False
    try:
        for k in range(1, iterations + 1):
            if stop is not None and stop.is_set():
                interrupted = True
                break
            evaluated.clear()
            optimizer.step(closure)
            # The closure scored the image *before* this step: that is image k - 1.
            history.append(evaluated[0])
            with torch.no_grad():
                pixels.clamp_(0.0, 1.0)
            seconds.append(time.perf_counter() - start)
            bar.set_postfix({n: f"{v:.4g}" for n, v in evaluated[0].items()}, refresh=False)
            bar.update(1)
            if on_iteration is not None:
                on_iteration(k, pixels.detach())
            if stop_below is not None and history[-1]["total"] <= stop_below:
                break
    finally:
        if own_bar:
            bar.close()
    with torch.no_grad():
        history.append(loss_fn(pixels, content).as_floats())
    return Trace(history, seconds, pixels.detach(), interrupted)


def _make_optimizer(pixels: torch.Tensor, settings: OptimizerSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "adam":
        return torch.optim.Adam([pixels], lr=settings.step_size)
    # max_iter=1 and no line search: one closure call per step (see the module docstring).
    # Zero tolerances: LBFGS would otherwise stop silently on the tiny per-pixel gradients.
    return torch.optim.LBFGS([pixels], lr=settings.step_size, max_iter=1, history_size=100,
                             tolerance_grad=0.0, tolerance_change=0.0, line_search_fn=None)


def build_loss(config: LossConfig, style: torch.Tensor, device: torch.device,
               vgg_weights: str | Path | None = None) -> PerceptualLoss:
    """The trainers' loss module (VGG16 up to the deepest layer used), with the style set."""
    layers = (*config.content_layers, *config.style_layers)
    deepest = max(layers, key=LAYER_INDEX.__getitem__)
    loss_fn = PerceptualLoss(load_vgg16(vgg_weights, last_layer=deepest, device=device), config)
    loss_fn.set_style(style.to(device))
    return loss_fn


# ---- the `rtstyle optimize` command's library function ----------------------------------


@dataclass
class OptimizeConfig:
    """Options of ``rtstyle optimize``; loss defaults are the trainers' (``LossConfig``)."""

    content: Path
    style: Path
    output: Path | None = None
    iterations: int = 300
    settings: OptimizerSettings = field(default_factory=OptimizerSettings)
    loss: LossConfig = field(default_factory=LossConfig)
    size: int | None = 512  # longer side of the content image; None keeps its size
    style_size: int | None = 512  # as the style trainer's default
    device: str = "auto"
    vgg_weights: Path | None = None
    save_every: int | None = None  # also write <output stem>_<iteration>.png every N iterations
    overwrite: bool = False
    progress: bool | str = True  # or a mode of rtstyle.progress: auto, bar, plain, json, none

    def validate(self) -> None:
        self.settings.validate()
        if self.iterations < 1:
            raise InputError(f"--iterations must be >= 1, got {self.iterations}")
        for name in ("size", "style_size"):
            value = getattr(self, name)
            if value is not None and value < 16:
                raise InputError(f"--{name.replace('_', '-')} must be >= 16 px, got {value}")
        if self.save_every is not None:
            if self.save_every < 1:
                raise InputError(f"--save-every must be >= 1, got {self.save_every}")
            if self.output is None:
                raise InputError("--save-every needs an output path (-o OUT.png) to name the images after")
        if self.output is not None:
            self._check_output(Path(self.output))

    def _check_output(self, out: Path) -> None:
        if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
            raise OutputError(f"output {out} must end in .png, .jpg, .jpeg, .webp or .bmp")
        policy = OutputPolicy(overwrite=self.overwrite)  # the one output rule (rtstyle.outputs)
        policy.check(out, [self.content, self.style])
        if self.save_every:
            for k in range(self.save_every, self.iterations, self.save_every):
                policy.check(intermediate_path(out, k), [self.content, self.style])


@dataclass
class OptimizeResult:
    image: np.ndarray  # uint8 HWC RGB
    history: list[dict[str, float]]  # objective of the image after k iterations, k = 0..iterations
    seconds: float  # optimisation wall time (VGG loading and style Grams excluded)
    iterations: int
    output: Path | None = None
    intermediates: list[Path] = field(default_factory=list)
    final: torch.Tensor | None = field(default=None, repr=False)  # float (1, 3, H, W) on CPU


def _keep(config: OptimizeConfig, image: torch.Tensor | None) -> str:
    """Write the image an interrupted run reached (None: no iteration finished) to ``config.output``;
    says where, for the message."""
    if config.output is None or image is None:
        return "; no iteration finished, nothing written" if config.output is not None else ""
    save_image(config.output, image.cpu(), config.overwrite)
    return f"; the image so far is in {config.output}"


def intermediate_path(output: Path, iteration: int) -> Path:
    return output.with_name(f"{output.stem}_{iteration:05d}{output.suffix}")


def optimize_image(config: OptimizeConfig, stop: threading.Event | None = None) -> OptimizeResult:
    """Stylize ``config.content`` by optimisation; writes ``config.output`` if given.

    Stopped (``stop`` set, e.g. by ``signals.interrupt_on_signals``, or Ctrl-C without it), the
    image reached so far is written (atomically) before ``Interrupted``.
    """
    from .engine import resolve_device

    config.validate()
    content_np = load_image(config.content, max_side=config.size)  # InputError if unreadable
    style = numpy_to_float(load_image(config.style, max_side=config.style_size))
    device = resolve_device(config.device)
    if device.type == "cpu":
        keep_freed_memory()  # no page faults per iteration (cpu_memory.py)
    content = numpy_to_float(content_np).to(device)
    loss_fn = build_loss(config.loss, style, device, config.vgg_weights)

    intermediates: list[Path] = []
    latest: list[torch.Tensor] = [content]

    def on_iteration(k: int, image: torch.Tensor) -> None:
        latest[0] = image
        if config.save_every and k % config.save_every == 0 and k < config.iterations:
            intermediates.append(save_image(intermediate_path(Path(config.output), k), image.cpu(), config.overwrite))

    try:
        trace = optimize_pixels(loss_fn, content, config.iterations, config.settings, on_iteration=on_iteration,
                                progress=config.progress, desc=f"optimize {Path(config.content).name}", stop=stop)
    except KeyboardInterrupt:  # no stop event (library callers), or a second signal: the image so far
        raise Interrupted(f"optimisation interrupted{_keep(config, None if latest[0] is content else latest[0])}") from None
    if trace.interrupted:
        done = len(trace.history) - 1
        raise Interrupted(f"optimisation stopped after {done} of {config.iterations} iterations"
                          f"{_keep(config, trace.final if done else None)}")
    image = float_to_numpy(trace.final)[0]
    if config.output is not None:
        save_image(config.output, image, config.overwrite)
    return OptimizeResult(image, trace.history, trace.seconds[-1], config.iterations,
                          Path(config.output) if config.output else None, intermediates, trace.final.cpu())
