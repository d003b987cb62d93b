"""The feed-forward networks, defined once and imported by trainers, export and runtime; one module
per family (``transformer``, ``sr``, ``adain``, ``stylebank``, ``texture``), shared blocks in
``common`` and the name -> architecture table in ``registry``. Import them from here.

Every network takes and returns float NCHW RGB in [0, 1] (see ``frames.py``), any size >= ``MIN_SIDE``.
A network is described completely by its config dataclass; checkpoints store that config,
so ``build_model(config_dict)`` rebuilds the net with no extra flags.
"""

from .adain import ADAIN_EPS, ENCODER_LAYER, AdaINConfig, AdaINDecoder, AdaINNet, adain, channel_mean_std
from .common import MIN_SIDE, ConvLayer, ResidualBlock, UpsampleConv
from .registry import ModelConfig, build_model, config_from_dict, config_to_dict, output_scale
from .sr import SRNet, SRNetConfig
from .stylebank import StyleBankConfig, StyleBankNet, style_bank
from .texture import TextureNet, TextureNetConfig, TextureSynthConfig, TextureSynthNet
from .transformer import StyleNet, StyleNetConfig

__all__ = [
    "ADAIN_EPS", "ENCODER_LAYER", "MIN_SIDE", "AdaINConfig", "AdaINDecoder", "AdaINNet", "ConvLayer", "ModelConfig",
    "ResidualBlock", "SRNet", "SRNetConfig", "StyleBankConfig", "StyleBankNet", "StyleNet", "StyleNetConfig",
    "TextureNet", "TextureNetConfig", "TextureSynthConfig", "TextureSynthNet", "UpsampleConv", "adain",
    "build_model", "channel_mean_std", "config_from_dict", "config_to_dict", "output_scale", "style_bank",
]
