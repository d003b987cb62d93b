"""Network shapes for odd sizes, output range, configs and presets."""

from __future__ import annotations

import json

import pytest
import torch

from rtstyle.errors import CheckpointError
from rtstyle.nets import (
    MIN_SIDE,
    SRNet,
    SRNetConfig,
    StyleNet,
    StyleNetConfig,
    build_model,
    config_from_dict,
    config_to_dict,
    output_scale,
)

TINY_STYLE = StyleNetConfig(width=8, num_residual=1)


def _run(model: torch.nn.Module, *shape: int) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.no_grad():
        return model.eval()(torch.rand(*shape))


@pytest.mark.parametrize("shape", [(1, 3, 17, 23), (2, 3, 33, 47), (1, 3, MIN_SIDE, MIN_SIDE)])
def test_style_net_keeps_odd_sizes(shape):
    out = _run(build_model(TINY_STYLE), *shape)
    assert out.shape == shape
    assert out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_default_style_net_keeps_odd_sizes():
    out = _run(build_model(StyleNetConfig()), 1, 3, 17, 23)
    assert out.shape == (1, 3, 17, 23)


@pytest.mark.parametrize("scale, expected", [(4, (1, 3, 64, 76)), (8, (1, 3, 128, 152))])
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_sr_net_scales_odd_sizes(scale, expected, norm):
    model = build_model(SRNetConfig(scale=scale, width=8, num_residual=1, norm=norm))
    out = _run(model, 1, 3, 16, 19)
    assert out.shape == expected
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert model.scale == scale


def test_sr_norm_none_has_no_batchnorm():
    model = build_model(SRNetConfig(width=8, num_residual=1, norm="none"))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in build_model(SRNetConfig(width=8)).modules())


def test_style_net_treats_batch_items_independently():
    # InstanceNorm: batching frames in an engine must not change any frame's result.
    model = build_model(TINY_STYLE).eval()
    torch.manual_seed(1)
    x = torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[:1]), model(x[1:])])
    assert torch.allclose(batched, single, atol=1e-5)


def test_style_net_is_differentiable():
    model = build_model(TINY_STYLE)
    model(torch.rand(1, 3, 20, 20)).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("config", [TINY_STYLE, SRNetConfig(width=8, num_residual=1)])
@pytest.mark.parametrize("hw", [(MIN_SIDE - 1, 20), (20, MIN_SIDE - 1), (8, 8)])
def test_inputs_below_min_side_are_refused(config, hw):
    with pytest.raises(ValueError, match=f"minimum side {MIN_SIDE}"):
        build_model(config)(torch.rand(1, 3, *hw))


@pytest.mark.parametrize(
    "config",
    [StyleNetConfig(), StyleNetConfig(width=16, num_residual=3), SRNetConfig(), SRNetConfig(scale=8, norm="none")],
)
def test_config_round_trip_through_json(config):
    data = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(data) == config
    assert type(build_model(data)) is (StyleNet if config.arch == "style" else SRNet)


def test_config_dict_names_the_arch():
    assert config_to_dict(StyleNetConfig()) == {"arch": "style", "width": 32, "num_residual": 5, "downsamples": 2,
                                                "down_kernel": 3, "upsample": "nearest", "block": "conv",
                                                "edge_kernel": 9, "margin": 0}
    assert config_to_dict(SRNetConfig())["arch"] == "sr"


@pytest.mark.parametrize(
    "data, match",
    [
        ({"arch": "unet"}, "unknown model arch 'unet'"),
        ({"width": 8}, "unknown model arch None"),
        ({"arch": "style", "width": 8, "depth": 3}, r"unknown fields \['depth'\]"),
        ({"arch": "sr", "scale": 3}, "scale must be 2, 4 or 8"),
        ({"arch": "sr", "norm": "group"}, "norm must be"),
    ],
)
def test_bad_config_dicts_are_checkpoint_errors(data, match):
    with pytest.raises(CheckpointError, match=match):
        config_from_dict(data)


def test_presets():
    assert StyleNetConfig.preset("johnson") == StyleNetConfig()
    fast = StyleNetConfig.preset("fast")
    assert (fast.width, fast.num_residual) == (16, 3)
    n_fast = sum(p.numel() for p in build_model(fast).parameters())
    n_full = sum(p.numel() for p in build_model(StyleNetConfig()).parameters())
    assert n_fast < n_full / 3
    with pytest.raises(ValueError, match="'fast', 'johnson', 'lowres'"):
        StyleNetConfig.preset("huge")


def test_output_scale():
    assert output_scale(StyleNetConfig()) == 1
    assert output_scale(SRNetConfig(scale=8)) == 8


@pytest.mark.parametrize("scale", [4, 8])
def test_residual_sr_net_starts_as_bicubic(scale):
    """--arch residual: an untrained net is bicubic upsampling (last conv near zero), any size."""
    import torch.nn.functional as F

    model = build_model(SRNetConfig(scale=scale, width=8, num_residual=1, norm="none", residual=True)).eval()
    x = torch.rand(1, 3, 17, 21)
    with torch.no_grad():
        out = model(x)
    bicubic = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    assert out.shape == bicubic.shape
    assert (out - bicubic).abs().max() < 5e-3
    paper = build_model(SRNetConfig(scale=scale, width=8, num_residual=1, norm="none")).eval()
    with torch.no_grad():
        assert (paper(x) - bicubic).abs().max() > 0.05  # the paper's net has no bicubic path


def test_sr_residual_flag_round_trips_and_old_configs_stay_paper():
    data = config_to_dict(SRNetConfig(residual=True))
    assert data["residual"] is True and build_model(data).config.residual is True
    old = {k: v for k, v in config_to_dict(SRNetConfig()).items() if k != "residual"}
    assert build_model(old).config.residual is False
    with pytest.raises(ValueError, match="residual must be true or false"):
        SRNetConfig(residual="yes")


# ------------------------------------------------------------------ issue 31: the margin against a frame on the borders

MARGIN_NET = StyleNetConfig(width=8, num_residual=1, downsamples=3, down_kernel=4, edge_kernel=3, margin=8)


@pytest.mark.parametrize("shape", [(1, 3, MIN_SIDE, MIN_SIDE), (2, 3, 33, 47), (1, 3, 90, 160)])
def test_a_margin_is_mirrored_around_the_input_and_cropped_from_the_output(shape):
    from dataclasses import replace

    import torch.nn.functional as F

    torch.manual_seed(0)
    net = build_model(MARGIN_NET).eval()
    bare = build_model(replace(MARGIN_NET, margin=0)).eval()
    bare.load_state_dict(net.state_dict())  # same weights: the margin adds no parameters
    x = torch.rand(*shape)
    with torch.no_grad():
        out = net(x)
        padded = bare(F.pad(x, (8, 8, 8, 8), mode="reflect"))
    assert out.shape == x.shape
    torch.testing.assert_close(out, padded[..., 8:-8, 8:-8], rtol=0, atol=1e-6)


@pytest.mark.parametrize("margin", [-1, 16])
def test_a_margin_must_fit_the_smallest_input(margin):
    from rtstyle.errors import ConfigError

    with pytest.raises(ConfigError, match="margin must be 0 to 15"):
        StyleNetConfig(margin=margin)


def test_old_configs_have_no_margin_and_new_trainings_do(tmp_path):
    from rtstyle.netconfig import DEFAULT_MARGIN
    from rtstyle.trainconfig import StyleTrainConfig
    from tests.conftest import _save

    assert config_from_dict({"arch": "style", "width": 16, "num_residual": 3}).margin == 0
    style = tmp_path / "s.png"
    fresh = StyleTrainConfig(style=style, data=tmp_path, out=tmp_path / "o.safetensors", arch="lowres")
    assert fresh.model_config().margin == DEFAULT_MARGIN == 8
    old = _save(tmp_path / "old.safetensors", StyleNetConfig.preset("lowres"), "style")
    from rtstyle.trainers.style import with_resumed_margin

    resumed = StyleTrainConfig(style=style, data=tmp_path, out=old, resume=old, arch="lowres")
    assert with_resumed_margin(resumed).model_config().margin == 0  # a resume keeps the checkpoint's network
    from rtstyle.errors import InputError

    with pytest.raises(InputError, match="--margin must be 0 to 15 pixels, got 20"):
        StyleTrainConfig(style=style, data=tmp_path, out=tmp_path / "o.safetensors", margin=20).model_config()
