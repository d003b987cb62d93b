"""Style choices for multi-style networks, bound so every model the runtime sees is one
image -> image module.

* AdaIN (``nets.AdaINNet``) takes any style image: ``AdaINStyled`` holds that image's relu4_1
  mean/std and the strength ``alpha`` as buffers, and ``set_style`` swaps them in place (so a
  captured CUDA graph or a compiled model picks the new style up without a rebuild).
* StyleBank (``nets.StyleBankNet``) holds several styles: ``StyleBankSelected`` runs one bank.
* Every other arch has its style trained in and takes no choice.

``bind_style(checkpoint, choice)`` applies a ``StyleChoice`` (``EngineOptions.style``) and raises a
one-line InputError, naming the choice, for a choice the model cannot take or one it needs and lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import Checkpoint
from .errors import InputError
from .frames import load_image, to_float
from .nets import AdaINNet, StyleBankNet

DEFAULT_STYLE_SIZE = 512  # longer side of the style image; Huang & Belongie used 512
STYLE_STAT_CHANNELS = 512  # relu4_1


@dataclass(frozen=True)
class StyleChoice:
    """Which style a multi-style model should apply. None: not given."""

    style_image: Path | None = None  # AdaIN
    alpha: float | None = None  # AdaIN style strength in [0, 1] (default 1)
    style_index: int | None = None  # StyleBank
    style_size: int = DEFAULT_STYLE_SIZE

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        if self.style_size < 16:
            raise InputError(f"--style-size must be >= 16 pixels, got {self.style_size}")

    @property
    def given(self) -> bool:
        """True when any choice was made (``style_size`` alone is a setting, not a choice)."""
        return any(v is not None for v in (self.style_image, self.alpha, self.style_index))

    def describe(self) -> str:
        """The choices given, as the command-line flags that give them."""
        flags = (("--style-image", self.style_image), ("--alpha", self.alpha), ("--style-index", self.style_index))
        return " ".join(f"{flag} {value}" for flag, value in flags if value is not None) or "no style choice"


def check_alpha(alpha: float | None) -> None:
    if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"--alpha must be in [0, 1] (1: full style, 0: the content), got {alpha}")


def load_style_image(path: str | Path, style_size: int = DEFAULT_STYLE_SIZE) -> np.ndarray:
    """A style image as uint8 RGB HWC, longer side at most ``style_size`` (InputError if unreadable)."""
    return load_image(path, max_side=style_size)


class AdaINStyled(nn.Module):
    """An AdaIN net with one style bound: ``forward(images)`` -> stylized images."""

    def __init__(self, net: AdaINNet, alpha: float = 1.0):
        super().__init__()
        self.net = net
        self.register_buffer("style_mean", torch.zeros(1, STYLE_STAT_CHANNELS))
        self.register_buffer("style_std", torch.ones(1, STYLE_STAT_CHANNELS))
        self.register_buffer("alpha", torch.tensor(float(alpha)))

    @torch.no_grad()
    def set_style(self, image: np.ndarray | torch.Tensor, alpha: float | None = None) -> None:
        """Bind a style image (uint8 RGB HWC) and optionally a new strength, in place."""
        check_alpha(alpha)
        frames = torch.as_tensor(np.ascontiguousarray(image) if isinstance(image, np.ndarray) else image)
        style = to_float(frames.to(self.style_mean.device), self.style_mean.dtype)
        mean, std = self.net.style_stats(style)
        self.set_stats(mean, std)
        if alpha is not None:
            self.alpha.fill_(float(alpha))

    @torch.no_grad()
    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Bind precomputed relu4_1 statistics ((1, 512) each)."""
        self.style_mean.copy_(mean.reshape(1, -1))
        self.style_std.copy_(std.reshape(1, -1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images, self.style_mean, self.style_std, self.alpha)


class StyleBankSelected(nn.Module):
    """A StyleBank net running one of its banks: ``forward(images)`` -> stylized images."""

    def __init__(self, net: StyleBankNet, style_index: int):
        super().__init__()
        self.net = net
        self.style_index = style_index

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images, self.style_index)


def style_names(ckpt: Checkpoint) -> list[str]:
    """A StyleBank checkpoint's style names in bank order."""
    return [s.get("name", f"style {i}") for i, s in enumerate(ckpt.meta.get("styles", []))]


def bind_style(ckpt: Checkpoint, choice: StyleChoice, label: str | None = None) -> nn.Module:
    """``ckpt.model`` as a one-input module with ``choice`` applied (see the module docstring)."""
    label = label or ckpt.name
    model, arch = ckpt.model, ckpt.config.arch
    if arch == "texture_synth":
        raise InputError(f"{label} is a texture generator (noise in, no image or video in): "
                         "sample textures from it with `rtstyle synth`")
    if arch != "adain" and (choice.style_image is not None or choice.alpha is not None):
        raise InputError(f"{choice.describe()}: --style-image/--alpha work only with AdaIN models; "
                         f"{label} is a {arch!r} model "
                         "with its style trained in (train one with `rtstyle train adain`)")
    if arch != "stylebank" and choice.style_index is not None:
        raise InputError(f"--style-index {choice.style_index}: --style-index works only with StyleBank models; "
                         f"{label} is a {arch!r} model")
    if arch == "adain":
        if choice.style_image is None:
            raise InputError(f"{label} is an AdaIN (any-style) model: pass --style-image PAINTING.jpg [--alpha 0..1]")
        styled = AdaINStyled(model, 1.0 if choice.alpha is None else choice.alpha)
        styled.set_style(load_style_image(choice.style_image, choice.style_size))
        return styled.eval()
    if arch == "stylebank":
        count = ckpt.config.num_styles
        names = style_names(ckpt)
        listing = f" ({', '.join(f'{i}: {n}' for i, n in enumerate(names))})" if names else ""
        if choice.style_index is None or not 0 <= choice.style_index < count:
            given = "no --style-index" if choice.style_index is None else f"--style-index {choice.style_index}"
            raise InputError(f"{label} is a StyleBank model with {count} styles; {given} given, "
                             f"choose 0..{count - 1}{listing}")
        return StyleBankSelected(model, choice.style_index).eval()
    return model
