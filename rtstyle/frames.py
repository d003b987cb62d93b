"""The frame convention, owned here and nowhere else.

* Frames outside the networks (decoders, encoders, images on disk, engines' inputs and
  outputs) are **uint8 RGB, channels last**: one frame is ``(H, W, 3)``, a batch is
  ``(N, H, W, 3)`` -- numpy arrays or torch tensors.
* Tensors inside the networks, the losses and the trainers are **float, RGB, NCHW, in
  [0, 1]**. The [0, 1] range (not 0..255) is deliberate: squared activations of 0..255 inputs
  overflow fp16 inside InstanceNorm, while [0, 1] keeps fp16 engines exact enough.
* ImageNet mean/std normalisation belongs to the VGG loss network only (see ``vgg.py``).

Trainers, export, the runtime and the benchmarks all convert through these functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def to_float(frames: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 NHWC (or HWC) frames -> float NCHW in [0, 1], on the frames' device."""
    if frames.dtype != torch.uint8:
        raise TypeError(f"to_float: expected uint8 frames, got {frames.dtype}")
    if frames.dim() == 3:
        frames = frames.unsqueeze(0)
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"to_float: expected (N, H, W, 3) frames, got {tuple(frames.shape)}")
    return frames.permute(0, 3, 1, 2).to(dtype).div_(255.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float NCHW in [0, 1] -> uint8 NHWC (rounded, clamped), on the images' device."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"to_uint8: expected (N, 3, H, W) images, got {tuple(images.shape)}")
    out = images.detach().float().mul(255.0).clamp_(0.0, 255.0).round_().to(torch.uint8)
    return out.permute(0, 2, 3, 1).contiguous()


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
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
            if max_side is not None and max(im.size) > max_side:
                scale = max_side / max(im.size)
                size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
                im = im.resize(size, Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"not a readable image: {path} ({exc.__class__.__name__})") from None


def save_image(path: str | Path, image: np.ndarray | torch.Tensor) -> Path:
    """Write a uint8 HWC RGB array (or a float 1x3xHxW / 3xHxW tensor) atomically."""
    from PIL import Image

    from .fsutil import atomic_path

    if isinstance(image, torch.Tensor):
        if image.dim() == 3:
            image = image.unsqueeze(0)
        image = float_to_numpy(image)[0]
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format=_pil_format(path))
    return path


def _pil_format(path: Path) -> str:
    ext = path.suffix.lower()
    formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}
    if ext not in formats:
        raise InputError(f"unsupported image extension {ext!r} for {path}; use one of {sorted(formats)}")
    return formats[ext]
