"""The stabilisation term of ``rtstyle train style`` (``--stability-weight W``; issues 7 and 18).

On by default: synthetic motion (rotation 2 deg, zoom 3%, local flow 1.5 px, occluders in half the
pairs, plus the shift, noise and brightness below) at weight 400, chosen on tuning styles and
clips and then measured on styles and clips that played no part in the choice
(benchmarks/results/flicker-tune-2026-11-29.md, flicker-report-2026-11-29.md; the README has
the held-out figures). ``--stability-weight 0`` turns it off; ``--stability-rotate 0
--stability-zoom 0 --stability-flow 0 --stability-occlusion 0`` gives issue 7's translation-only
term, which generalised poorly to held-out styles and clips.

Per-frame style networks flicker because a small change of the input (a sub-pixel shift,
sensor noise, a brightness change) becomes a large change of the output texture. Without
optical-flow training data we can still ask for the property a steady video needs: stylizing
a slightly perturbed frame must give the equally perturbed stylization of the clean frame,

    loss = weight * mean( (f(T_in(x)) - T(f(x)))^2 )

where ``T`` is a random sub-pixel translation (applied to both sides) and ``T_in`` is ``T``
followed by Gaussian noise and a brightness offset (input side only: the output should ignore
them). A translation-equivariant network that ignores noise scores 0. Pixels within
``ceil(shift)`` of the border are left out: there the shifted image shows padding, not content.

With ``--stability-rotate/-zoom/-flow/-occlusion`` (the default) T is a richer synthetic motion
(``random_motion``): a random affine map plus a smooth local flow field, and optionally an
occluding patch of another photo in the moved input, as ReCoNet (Gao et al. 2018) trains on
pairs made from one image. Pixels near the occluder and near the border are left out.

The perturbed batch runs through the network in the same forward pass as the clean one
(``style.StyleTask.loss``), which keeps DistributedDataParallel to one forward per backward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rtstyle.trainconfig import StabilityConfig


def translate(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Move each image's content by ``shifts[i] = (dx, dy)`` pixels (+x right, +y down), bilinear,
    reflection at the borders. ``out(p) = images(p - shift)``."""
    n, _, h, w = images.shape
    theta = images.new_zeros((n, 2, 3), dtype=torch.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    # affine_grid works in [-1, 1] coordinates (align_corners=False): one pixel is 2/W wide.
    theta[:, 0, 2] = -2.0 * shifts[:, 0] / w
    theta[:, 1, 2] = -2.0 * shifts[:, 1] / h
    grid = F.affine_grid(theta, (n, 3, h, w), align_corners=False)
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False).to(images.dtype)


def _sample(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False).to(images.dtype)


class Motion:
    """One random synthetic motion per image: ``grid`` moves a batch (``out(p) = in(grid(p))``),
    ``valid`` (N, 1, H, W) marks the pixels the loss may compare, ``occluder`` (or None) is pasted
    into the moved input only."""

    def __init__(self, grid: torch.Tensor, valid: torch.Tensor, occluder: tuple[torch.Tensor, torch.Tensor] | None):
        self.grid, self.valid, self.occluder = grid, valid, occluder

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        return _sample(images, self.grid)


def random_motion(batch: torch.Tensor, cfg: StabilityConfig, margin: int) -> Motion:
    """A random affine map (rotation, zoom, translation) plus a smooth local flow field, in the
    ReCoNet manner (Gao et al. 2018): motion pairs made from one photo, so no flow data set is
    needed. Optionally an occluder: a rectangle of another image of the batch, pasted into the
    moved input; it and a ``margin`` around it (what the network's receptive field sees of it)
    are left out of the loss, as are pixels whose source lies within ``margin`` of the border."""
    n, _, h, w = batch.shape
    dev = batch.device
    uniform = lambda *shape: torch.rand(*shape, device=dev) * 2 - 1  # noqa: E731
    angle = uniform(n) * math.radians(cfg.rotate)
    scale = 1 + uniform(n) * cfg.zoom
    shift = uniform(n, 2) * cfg.shift
    theta = torch.zeros(n, 2, 3, device=dev)
    # Rotation in pixel units (not in the [-1, 1] square, which would shear non-square frames).
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    theta[:, 0, 2] = -2.0 * shift[:, 0] / w
    theta[:, 1, 2] = -2.0 * shift[:, 1] / h
    grid = F.affine_grid(theta, (n, 3, h, w), align_corners=False)
    if cfg.flow > 0:  # a smooth field: 4x4 random vectors, bicubic-upsampled
        coarse = uniform(n, 2, 4, 4) * cfg.flow
        local = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
        grid = grid + local * torch.tensor([2.0 / w, 2.0 / h], device=dev)
    # Source pixel coordinates of each output pixel: valid where at least `margin` inside.
    px = (grid[..., 0] + 1) * w / 2 - 0.5
    py = (grid[..., 1] + 1) * h / 2 - 0.5
    valid = ((px >= margin) & (px <= w - 1 - margin) & (py >= margin) & (py <= h - 1 - margin)).unsqueeze(1)
    occluder = None
    if cfg.occlusion > 0 and n > 1:
        on = torch.rand(n, device=dev) < cfg.occlusion
        ys, xs = torch.arange(h, device=dev).view(1, h, 1), torch.arange(w, device=dev).view(1, 1, w)
        size_y = (torch.rand(n, device=dev) * 0.25 + 0.15) * h  # 15-40% of each side
        size_x = (torch.rand(n, device=dev) * 0.25 + 0.15) * w
        top = torch.rand(n, device=dev) * (h - size_y)
        left = torch.rand(n, device=dev) * (w - size_x)
        inside = ((ys >= top.view(-1, 1, 1)) & (ys < (top + size_y).view(-1, 1, 1))
                  & (xs >= left.view(-1, 1, 1)) & (xs < (left + size_x).view(-1, 1, 1))) & on.view(-1, 1, 1)
        mask = inside.unsqueeze(1)
        occluder = (mask, batch.roll(1, dims=0))  # another photo of the batch shows through
        halo = max(margin, 8)
        near = F.max_pool2d(mask.float(), 2 * halo + 1, stride=1, padding=halo) > 0
        valid = valid & ~near
    return Motion(grid, valid, occluder)


class StabilityLoss:
    """The term: ``inputs`` makes the perturbed batch, ``__call__`` scores the outputs."""

    name = "stability"

    def __init__(self, config: StabilityConfig):
        self.config = config

    def inputs(self, net_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | Motion]:
        """The perturbed batch, and the shifts (or, for synthetic motion, the Motion) to apply to
        the clean output."""
        cfg = self.config
        n = net_in.shape[0]
        if cfg.moves:
            motion = random_motion(net_in, cfg, margin=max(4, math.ceil(cfg.shift + cfg.flow)))
            moved = motion.apply(net_in)
            if motion.occluder is not None:
                mask, other = motion.occluder
                moved = torch.where(mask, other, moved)
            transform: torch.Tensor | Motion = motion
        else:
            shifts = (torch.rand(n, 2, device=net_in.device) * 2 - 1) * cfg.shift
            moved, transform = translate(net_in, shifts), shifts
        noise = torch.randn_like(moved) * cfg.noise
        offset = (torch.rand(n, 1, 1, 1, device=net_in.device, dtype=moved.dtype) * 2 - 1) * cfg.brightness
        return (moved + noise + offset).clamp(0.0, 1.0), transform

    def __call__(self, output: torch.Tensor, extra_output: torch.Tensor, transform: torch.Tensor | Motion) -> torch.Tensor:
        if isinstance(transform, Motion):
            target = transform.apply(output)
            valid = transform.valid.to(output.dtype)
            diff = (extra_output.float() - target.float()) ** 2 * valid
            denom = valid.sum().clamp_min(1.0) * output.shape[1]
            return self.config.weight * diff.sum() / denom
        target = translate(output, transform)
        m = math.ceil(self.config.shift)
        h, w = output.shape[-2:]
        if m > 0 and min(h, w) > 2 * m:
            target, extra_output = target[..., m:h - m, m:w - m], extra_output[..., m:h - m, m:w - m]
        return self.config.weight * F.mse_loss(extra_output.float(), target.float())
