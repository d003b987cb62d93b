"""The one-line Python API: ``rtstyle.Stylizer``.

    from rtstyle import Stylizer
    st = Stylizer("starry_night")            # bundled name, checkpoint, .onnx, engine or .pt2
    out = st.image(Image.open("photo.jpg"))  # PIL in, PIL out; numpy in, numpy out; torch in, torch out
    for frame in st.frames(frames): ...      # any iterable of frames, batched through the engine
    st.video("clip.mp4", "out.mp4")          # the same code as ``rtstyle stylize`` (audio kept)
    Stylizer("great_wave", strength=0.6)     # any model at 60 % (``rtstyle.strength``); st.strength = 0.3 later

Everything goes through the same ``Engine`` the CLI uses; this module only converts between the
kinds of image users hold and the engine's uint8 RGB NHWC batches (``frames.py``'s convention).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .choices import DEFAULT_STYLE_MODEL
from .conditioning import StyleChoice
from .engine import Engine, EngineOptions, open_engine
from .errors import InputError
from .frames import image_to_rgb
from .strength import Strength, apply_strength, with_strength


@dataclass(frozen=True)
class _Kind:
    """How an image came in, so it can go back out the same way."""

    library: str  # "numpy" | "torch" | "pil"
    batched: bool  # (N, ...) rather than one image
    float_range: bool  # float in [0, 1] rather than uint8
    channels_first: bool  # CHW / NCHW (torch float images)
    device: torch.device | None = None
    dtype: Any = None


def _to_batch(image: Any) -> tuple[torch.Tensor, _Kind]:
    """Any supported image -> (uint8 NHWC RGB tensor on the CPU or its device, how it came in)."""
    if _is_pil(image):
        rgb = image_to_rgb(image)  # 16-bit and float modes scaled, not clipped
        return torch.from_numpy(rgb.copy()).unsqueeze(0), _Kind("pil", False, False, False)
    if isinstance(image, np.ndarray):
        kind = _Kind("numpy", image.ndim == 4, image.dtype != np.uint8, False, dtype=image.dtype)
        return _uint8_nhwc(torch.from_numpy(np.ascontiguousarray(image)), kind), kind
    if isinstance(image, torch.Tensor):
        channels_first = image.dim() >= 3 and image.shape[-3] == 3 and image.shape[-1] != 3
        kind = _Kind("torch", image.dim() == 4, image.dtype != torch.uint8, channels_first,
                     device=image.device, dtype=image.dtype)
        t = image.movedim(-3, -1) if channels_first else image
        return _uint8_nhwc(t, kind), kind
    raise InputError(f"Stylizer: expected a PIL image, a numpy array or a torch tensor, got {type(image).__name__}")


def _uint8_nhwc(t: torch.Tensor, kind: _Kind) -> torch.Tensor:
    if t.dim() == 2:  # greyscale: the networks are RGB
        t = t.unsqueeze(-1).expand(*t.shape, 3)
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if t.dim() != 4 or t.shape[-1] not in (3, 4):
        raise InputError(f"Stylizer: expected an (H, W, 3) image or an (N, H, W, 3) batch, got shape {tuple(t.shape)}"
                         " (torch float images may also be (3, H, W) / (N, 3, H, W))")
    t = t[..., :3]  # alpha is not stylized
    if kind.float_range:
        if not t.is_floating_point():
            raise InputError(f"Stylizer: unsupported dtype {t.dtype}; use uint8, or float in [0, 1]")
        t = (t.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return t.contiguous()


def _from_batch(out: torch.Tensor, kind: _Kind) -> Any:
    """uint8 NHWC engine output -> the kind the caller gave."""
    if kind.library == "pil":
        from PIL import Image

        return Image.fromarray(out[0].cpu().numpy())
    t = out if kind.batched else out[0]
    if kind.float_range:
        t = t.float() / 255.0
    if kind.library == "numpy":
        arr = t.cpu().numpy()
        return arr.astype(kind.dtype, copy=False) if kind.float_range else arr
    if kind.channels_first:
        t = t.movedim(-1, -3)
    return t.to(device=kind.device, dtype=kind.dtype if kind.float_range else torch.uint8)


def _is_pil(image: Any) -> bool:
    # No PIL import for callers that never use it: check the class's module instead.
    return any(c.__module__.startswith("PIL.") and c.__name__ == "Image" for c in type(image).__mro__)


class Stylizer:
    """A model opened once, applied to images, frame streams and video files.

    ``model`` is a bundled name (``rtstyle models``), a checkpoint, an ``.onnx`` file, a TensorRT
    engine or a ``.pt2`` package; the remaining arguments are ``rtstyle stylize``'s options.
    ``strength`` (0..1, settable later) blends the output with the input, for any model.
    """

    strength = Strength()  # checked on every assignment

    def __init__(self, model: str | Path = DEFAULT_STYLE_MODEL, *, device: str = "auto", backend: str = "auto",
                 precision: str = "auto", batch_size: int = 4, style: StyleChoice | None = None,
                 engine: Engine | None = None, strength: float = 1.0) -> None:
        self.model = model
        self.backend = backend
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.style = style or StyleChoice()
        self.strength = strength
        options = EngineOptions(device=device, precision=precision, batch_size=batch_size, style=self.style)
        self.engine = engine if engine is not None else open_engine(model, backend, options)

    def __repr__(self) -> str:
        strength = f", strength {self.strength:g}" if self.strength < 1 else ""
        return f"Stylizer({str(self.model)!r}, {self.engine.describe()}{strength})"

    def image(self, image: Any) -> Any:
        """Stylize one image (or one batch of same-sized images); returns the same kind it was given."""
        batch, kind = _to_batch(image)
        outs = [self._run(batch[i:i + self.batch_size]) for i in range(0, batch.shape[0], self.batch_size)]
        return _from_batch(torch.cat(outs) if len(outs) > 1 else outs[0], kind)

    def frames(self, frames: Iterable[Any]) -> Iterator[Any]:
        """Stylize a stream of single frames, ``batch_size`` at a time; yields each as it was given.

        Consecutive frames of one size are batched together; a size change flushes the batch.
        Only one batch is held in memory, so any length of stream works.
        """
        pending: list[tuple[torch.Tensor, _Kind]] = []
        for frame in frames:
            batch, kind = _to_batch(frame)
            if kind.batched:
                raise InputError("Stylizer.frames: expected single frames, got a batch; use Stylizer.image for a batch")
            if pending and (pending[0][0].shape != batch.shape or len(pending) == self.batch_size):
                yield from self._flush(pending)
                pending = []
            pending.append((batch, kind))
        if pending:
            yield from self._flush(pending)

    def video(self, src: str | Path, dst: str | Path, **options: Any) -> Any:
        """Stylize a video file exactly as ``rtstyle stylize SRC -o DST`` does (audio and timestamps kept).

        ``options`` are ``StylizeConfig`` fields (``overwrite=True``, ``max_side=480``, ...). Returns
        the ``StylizeResult``.
        """
        from .stylize import StylizeConfig, stylize_files

        config = StylizeConfig(inputs=(Path(src),), output=Path(dst), model=self.model, backend=self.backend,
                               device=self.device, precision=self.precision, batch_size=self.batch_size,
                               style=self.style, progress=options.pop("progress", False), **options)
        return stylize_files(config, engine=with_strength(self.engine, self.strength))[0]

    def _flush(self, pending: list[tuple[torch.Tensor, _Kind]]) -> Iterator[Any]:
        out = self._run(torch.cat([b for b, _ in pending]))
        for i, (_, kind) in enumerate(pending):
            yield _from_batch(out[i:i + 1], kind)

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        frames = batch.to(self.engine.device)
        return apply_strength(frames, self.engine(frames), self.strength)
