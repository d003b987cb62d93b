"""The super-resolution degradation model: how a high-resolution photo becomes the network's
low-resolution input (Johnson et al. 2016 / SRCNN: Gaussian blur, then bicubic downsampling).

The SR trainer makes its inputs with it and ``rtstyle eval sr`` degrades held-out photos with
it, so both see exactly the same low-resolution images. Float NCHW in [0, 1] (``frames.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_blur(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur (kernel radius 3 sigma, reflect padding), float NCHW."""
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=images.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).to(images.dtype)
    c = images.shape[1]
    out = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def degrade(hr: torch.Tensor, scale: int, sigma: float = 1.0) -> torch.Tensor:
    """Low-res input of Johnson et al. / SRCNN: Gaussian blur (sigma=1) then bicubic downsampling."""
    blurred = gaussian_blur(hr, sigma)
    h, w = hr.shape[-2] // scale, hr.shape[-1] // scale
    lr = F.interpolate(blurred, size=(h, w), mode="bicubic", align_corners=False, antialias=False)
    return lr.clamp(0.0, 1.0)
