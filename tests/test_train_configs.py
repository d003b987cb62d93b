"""Trainer configs check themselves when built (one-line InputError naming the flag), the loss and
network configs raise ConfigError (an InputError and a ValueError), and the config modules the CLI
reads its defaults from load no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rtstyle.choices import LossConfig
from rtstyle.errors import ConfigError, InputError
from rtstyle.netconfig import SRNetConfig, TextureSynthConfig
from rtstyle.trainconfig import (
    AdaINTrainConfig,
    SRTrainConfig,
    StyleBankTrainConfig,
    StyleTrainConfig,
    TextureTrainConfig,
)

OUT = Path("m.safetensors")


@pytest.mark.parametrize("build, message", [
    (lambda: StyleTrainConfig(style=Path("s.jpg"), data=Path("d"), out=OUT, iterations=0), "--iterations must be >= 1"),
    (lambda: StyleTrainConfig(style=Path("s.jpg"), data=Path("d"), out=OUT, arch="huge"), "--arch must be one of"),
    (lambda: StyleTrainConfig(style=Path("s.jpg"), data=Path("d"), out=OUT, style_weight=-1), "style_weight must be >= 0"),
    (lambda: StyleTrainConfig(style=Path("s.jpg"), data=Path("d"), out=OUT, stability_noise=-1), "--stability-noise"),
    (lambda: StyleTrainConfig(style=Path("s.jpg"), data=Path("d"), out=Path("m.pt")), "--out must end in .safetensors"),
    (lambda: SRTrainConfig(data=Path("d"), out=OUT, scale=3), "--scale must be one of"),
    (lambda: SRTrainConfig(data=Path("d"), out=OUT, norm="group"), "norm must be 'batch' or 'none'"),
    (lambda: SRTrainConfig(data=Path("d"), out=OUT, scale=8, image_size=96), "LR patches under 16 px"),
    (lambda: AdaINTrainConfig(data=Path("d"), out=OUT, styles=Path("s"), style_size=128), "--style-size (128)"),
    (lambda: StyleBankTrainConfig(data=Path("d"), out=OUT, styles=()), "no style images given"),
    (lambda: StyleBankTrainConfig(data=Path("d"), out=OUT, styles=[Path("a.jpg")], autoencoder_every=0),
     "--autoencoder-every"),
    (lambda: TextureTrainConfig(style=Path("s.jpg"), out=OUT), "needs --data"),
    (lambda: TextureTrainConfig(style=Path("s.jpg"), out=OUT, synthesis=True, image_size=100), "multiple of 2^scales"),
    (lambda: TextureTrainConfig(style=Path("s.jpg"), out=OUT, synthesis=True, stability_weight=1), "--stability-weight"),
    (lambda: TextureTrainConfig(style=Path("s.jpg"), out=OUT, synthesis=True, upsample="cubic"), "upsample"),
])
def test_configs_refuse_bad_values_when_built(build, message):
    with pytest.raises(InputError) as exc:
        build()
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_config_errors_are_input_errors_and_value_errors():
    for build in (lambda: LossConfig(tv_weight=-1), lambda: SRNetConfig(scale=3), lambda: TextureSynthConfig(scales=9)):
        with pytest.raises(ConfigError) as exc:
            build()
        assert isinstance(exc.value, InputError) and isinstance(exc.value, ValueError)


def test_good_configs_normalise_sequences_and_give_their_parts():
    bank = StyleBankTrainConfig(data=Path("d"), out=OUT, styles=[Path("a.jpg"), Path("b.jpg")])
    assert bank.styles == (Path("a.jpg"), Path("b.jpg")) and bank.iterations == 4000
    adain = AdaINTrainConfig(data=Path("d"), out=OUT, styles=Path("s"), hold_out=["x.jpg"])
    assert adain.hold_out == ("x.jpg",) and adain.loss_config().content_layers == ("relu4_1",)
    synth = TextureTrainConfig(style=Path("s.jpg"), out=OUT, synthesis=True)
    assert synth.model_config().arch == "texture_synth" and synth.loss_config().content_weight == 0.0
    assert TextureTrainConfig(style=Path("s.jpg"), data=Path("d"), out=OUT).model_config().arch == "texture"


def test_config_modules_load_no_torch():
    code = ("import sys, rtstyle.trainconfig, rtstyle.netconfig, rtstyle.commands.train; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
