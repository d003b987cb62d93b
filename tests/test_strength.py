"""Issue 29, style strength for every model: ``--strength S`` blends the engine's output with its
input (S x stylized + (1 - S) x input) on the engine's device, for stylize, live (the [ and ]
keys), the Python API and the studio (sessions and jobs)."""

from __future__ import annotations

import asyncio

import aiohttp
import numpy as np
import pytest
import torch

from rtstyle import Stylizer
from rtstyle.cli import main
from rtstyle.errors import InputError
from rtstyle.frames import load_image, save_image
from rtstyle.live import LiveConfig, Styles, run_live
from rtstyle.sinks import CallbackSink
from rtstyle.strength import (
    StrengthEngine,
    _blend_in_torch,
    _blend_on_cpu,
    apply_strength,
    check_strength,
    with_strength,
)
from tests.helpers_serve import run, studio
from tests.helpers_video import IdentityEngine, frame_pattern
from tests.test_live import FakeCapture

from .conftest import SAMPLES

PHOTO = SAMPLES / "samples" / "photos" / "skimage_chelsea.jpg"


class Inverting(IdentityEngine):
    """255 - x: every blend of it with the input is known exactly."""

    backend = "inverting"

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        return 255 - frames


def blend(stylized: np.ndarray, original: np.ndarray, s: float) -> np.ndarray:
    return np.round(s * stylized.astype(np.float64) + (1 - s) * original.astype(np.float64)).astype(np.uint8)


def test_apply_strength_blends_on_the_output_device():
    frames = torch.from_numpy(np.stack([frame_pattern(i, 40, 24) for i in range(3)]))
    out = 255 - frames
    assert apply_strength(frames, out, 1.0) is out
    assert torch.equal(apply_strength(frames, out, 0.0), frames)
    half = apply_strength(frames, out, 0.3)
    assert half.dtype == torch.uint8 and half.is_contiguous()
    assert np.abs(half.numpy().astype(int) - blend(out.numpy(), frames.numpy(), 0.3).astype(int)).max() <= 1
    # A larger (super-resolution) output: strength 0 is the bicubic enlargement of the input.
    flat = torch.full((1, 20, 30, 3), 77, dtype=torch.uint8)
    big = torch.zeros((1, 80, 120, 3), dtype=torch.uint8)
    assert (apply_strength(flat, big, 0.0) == 77).all() and (apply_strength(flat, big, 0.5) == 38).all()


@pytest.mark.parametrize("strength", [0.0, 0.3, 0.5])
@pytest.mark.parametrize("scale", [1, 4])
def test_the_gpus_torch_blend_and_the_cpus_opencv_blend_agree(strength, scale):
    """The torch blend runs on CUDA devices only; here it runs on CPU tensors beside OpenCV's."""
    frames = torch.from_numpy(np.stack([frame_pattern(i, 40, 24) for i in range(2)]))
    stylized = torch.from_numpy(np.stack([frame_pattern(i + 9, 40 * scale, 24 * scale) for i in range(2)]))
    gpu_way, cpu_way = _blend_in_torch(frames, stylized, strength), _blend_on_cpu(frames, stylized, strength)
    assert gpu_way.shape == cpu_way.shape == stylized.shape and gpu_way.dtype == cpu_way.dtype == torch.uint8
    assert (gpu_way.int() - cpu_way.int()).abs().max() <= (1 if scale == 1 else 2)  # bicubic: torch's and OpenCV's


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "strong"])
def test_strength_outside_zero_to_one_is_refused_by_name(bad):
    with pytest.raises(InputError, match="--strength"):
        check_strength(bad)
    with pytest.raises(InputError, match="--strength"):
        StrengthEngine(Inverting(), bad)


def test_strength_engine_keeps_the_engine_contract():
    inner = Inverting()
    assert with_strength(inner, 1.0) is inner
    engine = with_strength(inner, 0.25)
    assert isinstance(engine, StrengthEngine) and engine.scale == 1 and "strength 0.25" in engine.describe()
    image = frame_pattern(3, 20, 10)  # numpy in, numpy out; tiny frames go through the base class
    assert np.abs(engine(image).astype(int) - blend(255 - image, image, 0.25).astype(int)).max() <= 1
    engine.strength = 0.0
    assert np.array_equal(engine(image), image)


def test_stylize_strength_zero_is_the_photo_and_a_half_is_halfway(tmp_path, tiny_style_ckpt):
    photo = tmp_path / "p.png"
    save_image(photo, load_image(PHOTO, max_side=64))
    common = ["--model", str(tiny_style_ckpt), "--backend", "torch", "--precision", "fp32", "-q"]
    for s in ("0", "0.5", "1"):
        assert main(["stylize", str(photo), "-o", str(tmp_path / f"s{s}.png"), "--strength", s, *common]) == 0
    original, full = load_image(photo), load_image(tmp_path / "s1.png")
    assert np.array_equal(load_image(tmp_path / "s0.png"), original)
    assert np.abs(load_image(tmp_path / "s0.5.png").astype(int) - blend(full, original, 0.5).astype(int)).max() <= 1
    assert np.abs(full.astype(int) - original.astype(int)).mean() > 10  # the style does change the photo


def test_python_api_strength(tmp_path):
    image = frame_pattern(1, 48, 32)
    st = Stylizer(engine=Inverting(), strength=0.75)
    assert np.abs(st.image(image).astype(int) - blend(255 - image, image, 0.75).astype(int)).max() <= 1
    st.strength = 0
    assert np.array_equal(st.image(image), image) and np.array_equal(next(st.frames([image])), image)
    with pytest.raises(InputError, match="--strength"):
        st.strength = 2


def test_live_strength_keys_and_flag():
    styles = Styles(["a"], engines=[Inverting()], strength=0.5)
    assert styles.label == "engine 0 @ 0.5"
    for key, expected in (("[", 0.4), ("[", 0.3), ("]", 0.4)):
        styles.handle_key(ord(key))
        assert styles.strength == pytest.approx(expected)
    for _ in range(12):
        styles.handle_key(ord("]"))
    assert styles.strength == 1.0 and styles.label == "engine 0"  # capped, and full strength unlabelled

    shown: list[tuple[np.ndarray, np.ndarray]] = []
    config = LiveConfig(models=("fake",), window=False, max_frames=4, source="0", strength=0.25)
    run_live(config, open_capture=lambda src: FakeCapture(interval=0.002), engines=[Inverting()],
             extra_sinks=[CallbackSink(lambda image, frame: shown.append((image.copy(), frame.image.copy())))])
    assert len(shown) == 4
    for image, original in shown:
        assert np.abs(image.astype(int) - blend(255 - original, original, 0.25).astype(int)).max() <= 1
    with pytest.raises(InputError, match="--strength"):
        LiveConfig(models=("fake",), strength=1.2)


def test_studio_sessions_and_jobs_take_a_strength(tmp_path, tiny_style_ckpt):
    from rtstyle.serve.catalog import Catalog
    from rtstyle.serve.webrtc import SessionEngine, Settings, updated

    catalog = Catalog.build([str(tiny_style_ckpt)], device="cpu", backend="torch")
    settings = Settings(model="tiny_style").check(catalog)
    engine = SessionEngine(catalog, settings)
    frame = torch.from_numpy(frame_pattern(0, 48, 32))[None]
    full = engine(frame)
    engine.update(updated(settings, {"strength": 0}, catalog))
    assert torch.equal(engine(frame), frame)
    with pytest.raises(InputError, match="strength must be"):
        updated(settings, {"strength": 3}, catalog)

    photo = tmp_path / "p.png"
    save_image(photo, frame_pattern(2, 48, 32))

    async def go():
        async with studio(models=(str(tiny_style_ckpt),), backend="torch") as (url, _), aiohttp.ClientSession() as http:
            results = []
            for strength in ("0", "7"):
                form = aiohttp.FormData()
                form.add_field("strength", strength)
                form.add_field("file", photo.read_bytes(), filename="p.png")
                async with http.post(f"{url}/api/jobs", data=form) as r:
                    job = await r.json()
                    if r.status != 202:
                        results.append((r.status, job))
                        continue
                while job["status"] in ("queued", "running"):
                    await asyncio.sleep(0.05)
                    async with http.get(f"{url}/api/jobs/{job['id']}") as r:
                        job = await r.json()
                async with http.get(url + job["download"]) as r:
                    results.append((r.status, await r.read()))
            return results

    (ok, png), (refused, error) = run(go())
    assert ok == 200 and refused == 400 and "strength must be" in error["error"]
    (tmp_path / "out.png").write_bytes(png)
    assert np.array_equal(load_image(tmp_path / "out.png"), frame_pattern(2, 48, 32))  # strength 0: the photo
    assert not torch.equal(full, frame)

