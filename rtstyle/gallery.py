"""Visual evidence for the README: style before/after grids (the SR comparison is ``sr_eval.py``).

``style_grid`` runs style models on photos (none of which were in their training set) and lays
out one row per photo: the photo, then each model's output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint
from .errors import InputError
from .frames import IMAGE_EXTENSIONS, float_to_numpy, load_image, numpy_to_float, save_image
from .models import resolve_model
from .outputs import OutputPolicy


def _images(folder: Path, limit: int | None) -> list[Path]:
    if not Path(folder).is_dir():
        raise InputError(f"image folder not found: {folder}")
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise InputError(f"no images in {folder}")
    return files[:limit] if limit else files


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = tile.copy()
    cv2.rectangle(out, (0, 0), (min(out.shape[1], 8 + 9 * len(text)), 22), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop of ``size`` px (after shrinking the shorter side to ``size``)."""
    x = numpy_to_float(image)
    h, w = x.shape[-2:]
    s = size / min(h, w)
    x = F.interpolate(x, size=(max(size, round(h * s)), max(size, round(w * s))), mode="area")
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return float_to_numpy(x[..., top:top + size, left:left + size])[0]


def _columns(models: list[str], style_images: tuple[Path, ...]) -> list[tuple[str, torch.nn.Module, np.ndarray | None]]:
    """(label, image -> image module, style image or None) per grid column: one per one-style
    model, one per style image for an AdaIN model, one per bank for a StyleBank."""
    from .conditioning import StyleChoice, bind_style, load_style_image, style_names

    columns = []
    for name in models:
        ckpt = load_checkpoint(resolve_model(name), task="style")
        ckpt.model.float().eval()
        arch = ckpt.config.arch
        if arch == "adain":
            if not style_images:
                raise InputError(f"{ckpt.name} is an AdaIN model: give the grid's styles with --style-image (repeatable)")
            for path in style_images:
                net = bind_style(ckpt, StyleChoice(style_image=Path(path)), ckpt.name)
                columns.append((f"{ckpt.name}: {Path(path).stem}", net, load_style_image(path)))
        elif arch == "stylebank":
            names = style_names(ckpt) or [str(i) for i in range(ckpt.config.num_styles)]
            for i, bank in enumerate(names):
                columns.append((f"{ckpt.name}: {bank}", bind_style(ckpt, StyleChoice(style_index=i), ckpt.name), None))
        else:
            columns.append((ckpt.name, bind_style(ckpt, StyleChoice(), ckpt.name), None))
    return columns


@torch.inference_mode()
def style_grid(models: list[str], images: Path, out: Path, size: int = 256, limit: int | None = 4,
               style_images: tuple[Path, ...] = (), overwrite: bool = False) -> Path:
    """Rows: photo, then each model's output (labelled). AdaIN models get one column per style
    image, shown in a first row."""
    OutputPolicy(overwrite=overwrite).check(out, [*style_images, *_images(images, limit)])
    columns = _columns(models, tuple(style_images))
    rows = []
    if any(style is not None for _, _, style in columns):
        blank = np.zeros((size, size, 3), np.uint8)
        rows.append(np.concatenate([_label(blank, "style")] + [
            _label(_fit(style, size), "style") if style is not None else blank for _, _, style in columns], axis=1))
    for path in _images(images, limit):
        photo = _fit(load_image(path), size)
        tiles = [_label(photo, "input")]
        for name, net, _ in columns:
            tiles.append(_label(float_to_numpy(net(numpy_to_float(photo)))[0], name))
        rows.append(np.concatenate(tiles, axis=1))
    return save_image(out, np.concatenate(rows, axis=0), overwrite)
