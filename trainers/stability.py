"""The stabilisation term of ``rtstyle train style`` (``--stability-weight W``; issue 7).

On by default at weight 150, the weight that met issue 7's target in every training seed tried:
warping error -44% (-43%/-46%) at style loss +7% (+6%/+7%) on four real clips, against the same
training without it (benchmarks/results/temporal-seeds-2026-11-24.md). ``--stability-weight 0``
turns it off.

Per-frame style networks flicker because a small change of the input (a sub-pixel shift,
sensor noise, a brightness change) becomes a large change of the output texture. Without
optical-flow training data we can still ask for the property a steady video needs: stylizing
a slightly perturbed frame must give the equally perturbed stylization of the clean frame,

    loss = weight * mean( (f(T_in(x)) - T(f(x)))^2 )

where ``T`` is a random sub-pixel translation (applied to both sides) and ``T_in`` is ``T``
followed by Gaussian noise and a brightness offset (input side only: the output should ignore
them). A translation-equivariant network that ignores noise scores 0. Pixels within
``ceil(shift)`` of the border are left out: there the shifted image shows padding, not content.

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


class StabilityLoss:
    """The term: ``inputs`` makes the perturbed batch, ``__call__`` scores the outputs."""

    name = "stability"

    def __init__(self, config: StabilityConfig):
        self.config = config

    def inputs(self, net_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The perturbed batch and the shifts to apply to the clean output."""
        cfg = self.config
        n = net_in.shape[0]
        shifts = (torch.rand(n, 2, device=net_in.device) * 2 - 1) * cfg.shift
        moved = translate(net_in, shifts)
        noise = torch.randn_like(moved) * cfg.noise
        offset = (torch.rand(n, 1, 1, 1, device=net_in.device, dtype=moved.dtype) * 2 - 1) * cfg.brightness
        return (moved + noise + offset).clamp(0.0, 1.0), shifts

    def __call__(self, output: torch.Tensor, extra_output: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        target = translate(output, shifts)
        m = math.ceil(self.config.shift)
        h, w = output.shape[-2:]
        if m > 0 and min(h, w) > 2 * m:
            target, extra_output = target[..., m:h - m, m:w - m], extra_output[..., m:h - m, m:w - m]
        return self.config.weight * F.mse_loss(extra_output.float(), target.float())
