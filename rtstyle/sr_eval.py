"""Super-resolution against bicubic on held-out photos: PSNR-Y, SSIM-Y, LPIPS-VGG, colour shift,
wins per metric and a crop figure (``rtstyle eval sr``).

Each photo is shrunk to a ``crop``-px centre square (the ground truth), degraded exactly as the SR
trainer does (``degrade.py``: Gaussian blur sigma 1 then bicubic down), and brought back by bicubic
upsampling and by the model. The figure has one row per photo: low-res (nearest) | bicubic |
model | ground truth. Metrics follow ``metrics.py`` (Y of BT.601 for PSNR and SSIM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint
from .degrade import degrade
from .frames import float_to_numpy, load_image, numpy_to_float, save_image
from .gallery import _fit, _images, _label
from .models import resolve_model

METRICS = ("psnr", "ssim", "lpips", "colour_shift")
# Which way is better, for the win counts: PSNR and SSIM higher, LPIPS and colour shift lower.
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "colour_shift": False}
METHODS = ("bicubic", "model")


@dataclass
class SRReport:
    model: str
    scale: int
    crop: int
    per_image: list[dict] = field(default_factory=list)
    mean: dict = field(default_factory=dict)
    wins: dict = field(default_factory=dict)  # metric -> photos where the model beats bicubic
    figure: Path | None = None

    def to_dict(self) -> dict:
        return {"model": self.model, "scale": self.scale, "crop": self.crop, "images": len(self.per_image),
                "mean": self.mean, "wins": self.wins, "per_image": self.per_image,
                "figure": str(self.figure) if self.figure else None}


def colour_shift(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Largest per-channel difference of mean RGB, in 8-bit levels, per image: a colour cast
    moves a channel's mean; detail (sharper or blurrier) barely does."""
    return (a.double().mean(dim=(2, 3)) - b.double().mean(dim=(2, 3))).abs().amax(dim=1) * 255.0


@torch.inference_mode()
def sr_comparison(model: str, images: Path, out: Path, crop: int = 192, limit: int | None = None) -> SRReport:
    """Bicubic vs model vs ground truth on held-out photos: metrics per image and a crop figure."""
    from .metrics import LPIPS, psnr, ssim

    ckpt = load_checkpoint(resolve_model(model), task="sr")
    net, scale = ckpt.model.float().eval(), ckpt.config.scale
    lpips = LPIPS()
    report, rows = SRReport(model=ckpt.name, scale=scale, crop=crop), []
    for path in _images(images, limit):
        hr = numpy_to_float(_fit(load_image(path), crop))
        lr = degrade(hr, scale)
        bicubic = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
        sr = net(lr)
        row = {"image": path.name}
        for name, img in zip(METHODS, (bicubic, sr)):
            row[name] = {"psnr": float(psnr(img, hr)[0]), "ssim": float(ssim(img, hr)[0]),
                         "lpips": float(lpips(img, hr)[0]), "colour_shift": float(colour_shift(img, hr)[0])}
        report.per_image.append(row)
        nearest = F.interpolate(lr, scale_factor=scale, mode="nearest")
        tiles = [("low-res", nearest), ("bicubic", bicubic), (ckpt.name, sr), ("ground truth", hr)]
        rows.append(np.concatenate([_label(float_to_numpy(t)[0], n) for n, t in tiles], axis=1))
    for method in METHODS:
        report.mean[method] = {k: float(np.mean([r[method][k] for r in report.per_image])) for k in METRICS}
    for k in METRICS:
        sign = 1.0 if HIGHER_IS_BETTER[k] else -1.0
        report.wins[k] = sum(sign * (r["model"][k] - r["bicubic"][k]) > 0 for r in report.per_image)
    report.figure = save_image(out, np.concatenate(rows, axis=0))
    return report
