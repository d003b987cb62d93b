"""The frame convention, owned here and nowhere else.

* Frames outside the networks (decoders, encoders, images on disk, engines' inputs and
  outputs) are **uint8 RGB, channels last**: one frame is ``(H, W, 3)``, a batch is
  ``(N, H, W, 3)`` -- numpy arrays or torch tensors.
* Tensors inside the networks, the losses and the trainers are **float, RGB, NCHW, in
  [0, 1]**. The [0, 1] range (not 0..255) is deliberate: squared activations of 0..255 inputs
  overflow fp16 inside InstanceNorm, while [0, 1] keeps fp16 engines exact enough.
* ImageNet mean/std normalisation belongs to the VGG loss network only (see ``vgg.py``).
* A frame travelling through the runtime is a ``Frame``: the image plus its timestamp
  (``pts`` in ``time_base`` units), its position, and for live sources the capture time.
* OpenCV hands out BGR: ``bgr_to_rgb`` at the edge (cameras, OpenCV decoders), ``rgb_to_bgr``
  only for OpenCV windows. Resizing goes through ``resize``/``fit_size``, nowhere else.

Trainers, export, the runtime and the benchmarks all convert through these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError, InputError
from .fsutil import atomic_path
from .limits import MAX_DECODE_PIXELS, check_pixels

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MILLISECONDS = Fraction(1, 1000)  # the time base of sources without one of their own (cameras, images)


@dataclass
class Frame:
    """One picture on its way through the runtime."""

    image: np.ndarray  # uint8 (H, W, 3) RGB
    pts: int  # in time_base units, strictly increasing within a source
    time_base: Fraction
    index: int  # 0-based position in the source's output
    duration: int | None = None  # in time_base units when known
    captured_at: float | None = None  # time.perf_counter() when a live source captured it (latency)

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


# ------------------------------------------------------------------------ colour and size

def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or BGRA, or grayscale (H, W) / (H, W, 1)) -> uint8 RGB (H, W, 3)."""
    import cv2

    if image.ndim == 2 or image.shape[-1] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[-1] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def rgb_to_bgr(image: np.ndarray) -> np.ndarray:
    """uint8 RGB -> BGR, for OpenCV's windows and writers."""
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> uint8 grayscale (H, W): what optical flow runs on."""
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def fit_size(width: int, height: int, resize: tuple[int, int] | None = None,
             max_side: int | None = None) -> tuple[int, int]:
    """The (width, height) a frame is brought to: ``resize`` if given, else shrunk so the longer
    side is at most ``max_side`` (never enlarged), else unchanged."""
    if resize is not None:
        return int(resize[0]), int(resize[1])
    if max_side is not None and max(width, height) > max_side:
        s = max_side / max(width, height)
        return max(1, round(width * s)), max(1, round(height * s))
    return width, height


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at ``size`` = (width, height): area averaging when shrinking (no aliasing),
    bilinear when enlarging; the same array when the size already matches."""
    import cv2

    h, w = image.shape[:2]
    if (w, h) == tuple(size):
        return image
    shrink = size[0] * size[1] < w * h
    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)



def to_float(frames: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 NHWC (or HWC) frames -> float NCHW in [0, 1], on the frames' device."""
    if frames.dtype != torch.uint8:
        raise TypeError(f"to_float: expected uint8 frames, got {frames.dtype}")
    if frames.dim() == 3:
        frames = frames.unsqueeze(0)
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"to_float: expected (N, H, W, 3) frames, got {tuple(frames.shape)}")
    return frames.permute(0, 3, 1, 2).to(dtype).div_(255.0)


def to_uint8(images: torch.Tensor, check_finite: bool = True) -> torch.Tensor:
    """float NCHW in [0, 1] -> uint8 NHWC (rounded, clamped), on the images' device.

    ``check_finite=False`` skips the NaN/Inf check, for callers that check otherwise: a CUDA graph
    capture, where the check's host sync is illegal, returns ``finite_flag`` as an output instead."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"to_uint8: expected (N, 3, H, W) images, got {tuple(images.shape)}")
    images = images.detach().float()
    # NaN would become 0 and Inf 255 silently: a diverged or corrupt model, or an fp16 overflow,
    # must stop the run instead of writing black frames (one sum: NaN and Inf propagate).
    # Not while a graph is traced for export: the check is data-dependent control flow.
    tracing = images.is_meta or torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting()
    if check_finite and not tracing and not bool(finite_flag(images)):
        raise nonfinite_error(int((~torch.isfinite(images)).sum()), images.numel())
    out = images.mul(255.0).clamp_(0.0, 255.0).round_().to(torch.uint8)
    return out.permute(0, 2, 3, 1).contiguous()


def finite_flag(images: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor, on the images' device: no NaN or Inf among them (no host sync)."""
    return torch.isfinite(images.float().sum())


def nonfinite_error(bad: int | None, total: int) -> CheckpointError:
    """The error for a model output holding NaN/Inf (``bad`` of ``total`` values, when counted)."""
    count = f"{bad} NaN/Inf values of {total}" if bad is not None else f"NaN/Inf values among its {total}"
    return CheckpointError(f"the model's output holds {count} (a corrupt or diverged model, or an fp16 overflow); "
                           "nothing was written for these frames; try --precision fp32 or another model")


def numpy_to_float(frames: np.ndarray) -> torch.Tensor:
    """uint8 NHWC/HWC numpy -> float NCHW [0, 1] torch tensor (CPU)."""
    return to_float(torch.from_numpy(np.ascontiguousarray(frames)))


def float_to_numpy(images: torch.Tensor) -> np.ndarray:
    """float NCHW [0, 1] tensor -> uint8 NHWC numpy array (CPU)."""
    return to_uint8(images).cpu().numpy()


def load_image(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """Read an image file as uint8 RGB HWC, honouring EXIF rotation, optionally shrunk so its
    longer side is at most ``max_side``. Raises InputError naming the file on any failure."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            # The header is read, no pixel yet: refuse sizes that would not fit in memory (issue 15).
            check_pixels(*im.size, path, MAX_DECODE_PIXELS, "shrink the image first")
            im = ImageOps.exif_transpose(im)
            im = Image.fromarray(image_to_rgb(im))
            if max_side is not None and max(im.size) > max_side:
                scale = max_side / max(im.size)
                size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
                im = im.resize(size, Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8).copy()
    except Image.DecompressionBombError:  # PIL's own guard fires first above ~180 MP
        raise InputError(f"{path} declares more than {MAX_DECODE_PIXELS:,} pixels, above the limit rtstyle decodes "
                         "(shrink the image first)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"not a readable image: {path} ({exc.__class__.__name__})") from None


# PIL modes whose samples are wider than 8 bits: PIL's convert("RGB") clips them (a 16-bit grey
# PNG comes out white), so they are scaled here. 16-bit RGB(A) PNGs and TIFFs open as 8-bit
# RGB(A), already scaled by PIL.
_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def image_to_rgb(im) -> np.ndarray:
    """A PIL image as uint8 RGB (H, W, 3), every mode scaled to its full range: 16-bit grey
    (``I;16``, ``I;16B``, ...) and 32-bit integer (``I``) from 0..65535, float (``F``) from 0..1
    (0..255 or 0..65535 when its values go above 1 or 255: float files carry no range);
    grey + alpha (``LA``), palettes and the rest through PIL (alpha dropped)."""
    if im.mode not in _WIDE_GREY:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    grey = np.asarray(im, dtype=np.float32)
    if im.mode == "F":
        peak = float(np.nanmax(grey)) if grey.size else 0.0
        full = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
    else:
        full = 65535.0
    grey = np.nan_to_num(grey, nan=0.0, posinf=full, neginf=0.0)
    out = np.clip(np.rint(grey * (255.0 / full)), 0, 255).astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=-1)


def save_image(path: str | Path, image: np.ndarray | torch.Tensor, overwrite: bool = True, **options) -> Path:
    """Write a uint8 HWC RGB array (or a float 1x3xHxW / 3xHxW tensor) atomically, in the format
    of the extension; ``options`` go to PIL's writer (e.g. ``quality=95``). With ``overwrite=False``
    an existing file is never replaced (rtstyle.outputs)."""
    from PIL import Image

    if isinstance(image, torch.Tensor):
        if image.dim() == 3:
            image = image.unsqueeze(0)
        image = float_to_numpy(image)[0]
    path = Path(path)
    with atomic_path(path, overwrite) as tmp:
        Image.fromarray(image).save(tmp, format=_pil_format(path), **options)
    return path


def _pil_format(path: Path) -> str:
    ext = path.suffix.lower()
    formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
               ".tiff": "TIFF"}
    if ext not in formats:
        raise InputError(f"unsupported image extension {ext!r} for {path}; use one of {sorted(formats)}")
    return formats[ext]
