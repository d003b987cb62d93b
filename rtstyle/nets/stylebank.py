"""Chen et al. 2017 StyleBank: a shared encoder/decoder and one filter bank per style.

``forward`` takes a style index besides the image; ``rtstyle.conditioning`` binds it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..netconfig import StyleBankConfig
from .common import ConvLayer, UpsampleConv, norm_layer, pad_to_multiple, to_pixel_range


def style_bank(channels: int, layers: int) -> nn.Sequential:
    modules: list[nn.Module] = []
    for i in range(layers):
        modules.append(ConvLayer(channels, channels, 3))
        if i < layers - 1:
            modules.append(nn.ReLU(inplace=True))
    return nn.Sequential(*modules)


class StyleBankNet(nn.Module):
    """``forward(x, style_index)``: encoder -> bank ``style_index`` -> decoder; ``style_index``
    None is the auto-encoder branch (encoder -> decoder) that the T+1 training alternates with.

    Encoder and decoder are the style net's down/up stages (9x9 w, 3x3/2 2w, 3x3/2 4w with
    InstanceNorm + ReLU; upsample+conv back), so the encoder output is >= 0 after its ReLU."""

    stride = 4

    def __init__(self, config: StyleBankConfig = StyleBankConfig()):
        super().__init__()
        self.config = config
        w = config.width
        enc: list[nn.Module] = []
        for cin, cout, k, s in ((3, w, 9, 1), (w, 2 * w, 3, 2), (2 * w, 4 * w, 3, 2)):
            enc += [ConvLayer(cin, cout, k, s), norm_layer("instance", cout), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*enc)
        self.banks = nn.ModuleList(style_bank(4 * w, config.bank_layers) for _ in range(config.num_styles))
        dec: list[nn.Module] = []
        for cin, cout in ((4 * w, 2 * w), (2 * w, w)):
            dec += [UpsampleConv(cin, cout), norm_layer("instance", cout), nn.ReLU(inplace=True)]
        dec.append(ConvLayer(w, 3, 9))
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor, style_index: int | None = None) -> torch.Tensor:
        if style_index is not None and not 0 <= style_index < len(self.banks):
            n = len(self.banks)
            raise ValueError(f"style index {style_index} out of range; this StyleBank has {n} styles (0..{n - 1})")
        h, w = x.shape[-2:]
        features = self.encoder(pad_to_multiple(x, self.stride))
        if style_index is not None:
            features = self.banks[style_index](features)
        y = self.decoder(features)
        return to_pixel_range(F.pad(y, (0, w - y.shape[-1], 0, h - y.shape[-2])))
