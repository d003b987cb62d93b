"""Every architecture by name: a checkpoint stores its network's config (``config_to_dict``) and
``build_model(config_dict)`` rebuilds the net with no extra flags."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from torch import nn

from ..errors import CheckpointError
from .adain import AdaINConfig, AdaINNet
from .sr import SRNet, SRNetConfig
from .stylebank import StyleBankConfig, StyleBankNet
from .texture import TextureNet, TextureNetConfig, TextureSynthConfig, TextureSynthNet
from .transformer import StyleNet, StyleNetConfig

ModelConfig = StyleNetConfig | SRNetConfig | AdaINConfig | StyleBankConfig | TextureNetConfig | TextureSynthConfig

_ARCHS: dict[str, tuple[type, type[nn.Module]]] = {
    "style": (StyleNetConfig, StyleNet),
    "sr": (SRNetConfig, SRNet),
    "adain": (AdaINConfig, AdaINNet),
    "stylebank": (StyleBankConfig, StyleBankNet),
    "texture": (TextureNetConfig, TextureNet),
    "texture_synth": (TextureSynthConfig, TextureSynthNet),
}


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    return asdict(config)


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Rebuild a config dataclass; unknown archs or fields are a CheckpointError."""
    arch = data.get("arch")
    if arch not in _ARCHS:
        raise CheckpointError(f"unknown model arch {arch!r}; expected one of {sorted(_ARCHS)}")
    cls = _ARCHS[arch][0]
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise CheckpointError(f"model config for arch {arch!r} has unknown fields {sorted(unknown)}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid model config {data}: {exc}") from None


def build_model(config: ModelConfig | dict[str, Any]) -> nn.Module:
    """Instantiate the network a config describes."""
    if isinstance(config, dict):
        config = config_from_dict(config)
    return _ARCHS[config.arch][1](config)


def output_scale(config: ModelConfig) -> int:
    """How many times larger the output is than the input (1 for style nets)."""
    return getattr(config, "scale", 1)
