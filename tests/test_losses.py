"""Perceptual-loss terms against hand-computed values, and PerceptualLoss's contract."""

from __future__ import annotations

import json

import pytest
import torch

from rtstyle.losses import LossConfig, PerceptualLoss, feature_loss, gram_matrix, style_loss, tv_loss
from rtstyle.vgg import VGG16
from tests.helpers_core import random_vgg_weights

# ---- the terms on tiny tensors ----------------------------------------------------------


def test_gram_matrix_by_hand():
    # channel 0 = [1, 2, 3, 4], channel 1 = [0, 1, 0, 1]
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])
    # F F^T = [[30, 6], [6, 2]], divided by C*H*W = 8
    expected = torch.tensor([[[3.75, 0.75], [0.75, 0.25]]])
    assert torch.allclose(gram_matrix(features), expected)


def test_gram_matrix_is_float32_for_half_features():
    features = torch.full((2, 3, 4, 4), 100.0, dtype=torch.float16)
    g = gram_matrix(features)
    assert g.dtype == torch.float32 and g.shape == (2, 3, 3)
    # 100^2 * 16 / 48 would be fine in fp16, but the sums before dividing (160000) are not.
    assert torch.allclose(g, torch.full((2, 3, 3), 100.0**2 / 3))


def test_style_loss_is_weighted_squared_frobenius_distance():
    g1 = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    g2 = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    t1, t2 = torch.zeros_like(g1), torch.eye(2).unsqueeze(0)
    # layer 1: 1 + 4 + 9 + 16 = 30; layer 2: identical -> 0
    assert style_loss([g1, g2], [t1, t2]).item() == pytest.approx(30.0)
    assert style_loss([g1, g2 + 1], [t1, t2], weights=[2.0, 0.5]).item() == pytest.approx(2 * 30 + 0.5 * 4)


def test_style_loss_broadcasts_one_target_and_averages_over_batch():
    out = torch.stack([torch.ones(2, 2), 2 * torch.ones(2, 2)])  # batch of 2
    target = torch.zeros(1, 2, 2)
    # per item: 4 * 1 = 4 and 4 * 4 = 16 -> mean 10
    assert style_loss([out], [target]).item() == pytest.approx(10.0)


def test_style_loss_rejects_mismatched_layer_counts():
    with pytest.raises(ValueError):
        style_loss([torch.zeros(1, 2, 2)], [torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)])


def test_tv_loss_on_a_ramp():
    # 3 channels, 3 rows, 4 columns; every horizontal step is 0.1, every vertical step 0.
    ramp = (torch.arange(4.0) * 0.1).expand(1, 3, 3, 4)
    # 3 channels * 3 rows * 3 steps * 0.1^2 = 0.27
    assert tv_loss(ramp).item() == pytest.approx(0.27)
    assert tv_loss(ramp.transpose(2, 3)).item() == pytest.approx(0.27)  # vertical ramp
    assert tv_loss(torch.full((2, 3, 5, 5), 0.7)).item() == 0.0


def test_tv_loss_averages_over_batch():
    ramp = (torch.arange(4.0) * 0.1).expand(1, 3, 3, 4)
    batch = torch.cat([ramp, torch.zeros_like(ramp)])
    assert tv_loss(batch).item() == pytest.approx(0.27 / 2)


def test_feature_loss_is_mean_squared_error():
    out = torch.tensor([[[[1.0, 2.0], [0.0, -1.0]]]])
    target = torch.zeros_like(out)
    assert feature_loss(out, target).item() == pytest.approx((1 + 4 + 0 + 1) / 4)


# ---- LossConfig -------------------------------------------------------------------------


def test_loss_config_defaults_follow_the_paper():
    cfg = LossConfig()
    assert cfg.content_layers == ("relu3_3",)
    assert cfg.style_layers == ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def test_loss_config_rejects_unknown_layer():
    with pytest.raises(ValueError, match="relu9_9"):
        LossConfig(style_layers=("relu1_2", "relu9_9"))
    with pytest.raises(ValueError, match="conv3_3"):
        LossConfig(content_layers=("conv3_3",))


@pytest.mark.parametrize("field", ["content_weight", "style_weight", "tv_weight", "pixel_weight"])
def test_loss_config_rejects_negative_weights(field):
    with pytest.raises(ValueError, match=field):
        LossConfig(**{field: -1.0})


def test_loss_config_rejects_mismatched_or_negative_layer_weights():
    with pytest.raises(ValueError, match="3 style_layer_weights for 4 style_layers"):
        LossConfig(style_layer_weights=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="style_layer_weights must be >= 0"):
        LossConfig(style_layer_weights=(1.0, -1.0, 1.0, 1.0))


def test_loss_config_survives_json():
    cfg = LossConfig(style_layers=["relu1_2", "relu2_2"], style_layer_weights=[1, 2], tv_weight=0.0)
    again = LossConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.style_layers == ("relu1_2", "relu2_2") and again.style_layer_weights == (1.0, 2.0)


# ---- PerceptualLoss ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_vgg() -> VGG16:
    # Random features suffice for the loss plumbing; test_vgg.py checks the real weights.
    return VGG16(random_vgg_weights(upto="relu3_3"), last_layer="relu3_3")


STYLE_CFG = dict(style_layers=("relu1_2", "relu2_2"), content_layers=("relu2_2",))


def test_identical_output_and_content_have_zero_content_loss(small_vgg):
    loss = PerceptualLoss(small_vgg, LossConfig(style_weight=0.0, tv_weight=0.0, **STYLE_CFG))
    x = torch.rand(2, 3, 32, 32)
    terms = loss(x, x.clone())
    assert set(terms.terms) == {"content"}
    assert terms.terms["content"].item() == 0.0 and terms.total.item() == 0.0
    assert terms.as_floats() == {"total": 0.0, "content": 0.0}


def test_content_loss_is_positive_and_differentiable_for_different_images(small_vgg):
    loss = PerceptualLoss(small_vgg, LossConfig(style_weight=0.0, tv_weight=0.0, **STYLE_CFG))
    out = torch.rand(1, 3, 32, 32, requires_grad=True)
    terms = loss(out, torch.rand(1, 3, 32, 32))
    assert terms.total.item() > 0
    terms.total.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert all(p.grad is None for p in small_vgg.parameters())  # the loss net stays frozen


def test_style_loss_needs_set_style(small_vgg):
    loss = PerceptualLoss(small_vgg, LossConfig(**STYLE_CFG))
    with pytest.raises(RuntimeError, match="set_style"):
        loss(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))


def test_style_term_vanishes_for_the_style_image_itself(small_vgg):
    loss = PerceptualLoss(small_vgg, LossConfig(tv_weight=0.0, **STYLE_CFG))
    style = torch.rand(1, 3, 32, 32)
    loss.set_style(style)
    same = loss(style, style).terms["style"].item()
    other = loss(torch.rand(1, 3, 32, 32), style).terms["style"].item()
    assert same < 1e-10 < other


def test_all_terms_are_weighted_and_summed(small_vgg):
    cfg = LossConfig(content_weight=2.0, style_weight=3.0, tv_weight=0.5, pixel_weight=4.0, **STYLE_CFG)
    loss = PerceptualLoss(small_vgg, cfg)
    style, out, content = torch.rand(3, 1, 3, 32, 32)
    loss.set_style(style)
    terms = loss(out, content)
    assert set(terms.terms) == {"content", "style", "tv", "pixel"}
    assert terms.terms["tv"].item() == pytest.approx(0.5 * tv_loss(out).item(), rel=1e-6)
    assert terms.terms["pixel"].item() == pytest.approx(4.0 * ((out - content) ** 2).mean().item(), rel=1e-6)
    assert terms.total.item() == pytest.approx(sum(v.item() for v in terms.terms.values()), rel=1e-6)


def test_layers_deeper_than_the_vgg_are_an_error(small_vgg):
    loss = PerceptualLoss(small_vgg, LossConfig(style_weight=0.0, content_layers=("relu4_3",)))
    with pytest.raises(ValueError, match="relu4_3"):
        loss(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
