"""Checkpoints: round trips (fp32, fp16, optimiser), cheap metadata, and every kind of bad file."""

from __future__ import annotations

import json
import random

import pytest
import safetensors
import safetensors.torch
import torch

from rtstyle.checkpoint import load_checkpoint, read_metadata, restore_optimizer, save_checkpoint
from rtstyle.errors import CheckpointError
from rtstyle.nets import SRNetConfig, StyleNetConfig, build_model, config_to_dict

TINY_STYLE = StyleNetConfig(width=8, num_residual=1)
META = {"task": "style", "name": "tiny", "train": {"iterations": 7, "seed": 3}, "loss": {"style_weight": 5.0}}


def tiny_model(config=TINY_STYLE, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(config)
    # Nudge the affine norms off their identity init so a lost tensor would show.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def frame(seed: int = 1, size: tuple[int, int] = (20, 24)) -> torch.Tensor:
    return torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(seed))


# ---- round trips ------------------------------------------------------------------------


def test_round_trip_rebuilds_identical_outputs(tmp_path):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "m.safetensors", model, META)
    ckpt = load_checkpoint(path)
    assert ckpt.config == TINY_STYLE and ckpt.task == "style" and ckpt.name == "tiny"
    assert ckpt.meta["train"] == META["train"] and ckpt.meta["loss"] == META["loss"]
    assert not ckpt.model.training
    with torch.no_grad():
        assert torch.equal(ckpt.model(frame()), model(frame()))


def test_sr_round_trip_keeps_batchnorm_statistics(tmp_path):
    model = tiny_model(SRNetConfig(width=8, num_residual=1))
    model.train()
    with torch.no_grad():
        model(torch.rand(2, 3, 16, 16))  # moves the running stats off their init
    model.eval()
    path = save_checkpoint(tmp_path / "sr.safetensors", model, {"task": "sr"})
    ckpt = load_checkpoint(path, task="sr")
    with torch.no_grad():
        assert torch.equal(ckpt.model(frame(size=(16, 17))), model(frame(size=(16, 17))))
    assert ckpt.name == "sr"  # falls back to the file name


def test_fp16_checkpoint_is_half_size_and_close(tmp_path):
    model = tiny_model()
    full = save_checkpoint(tmp_path / "fp32.safetensors", model, META)
    half = save_checkpoint(tmp_path / "fp16.safetensors", model, META, dtype=torch.float16)
    with safetensors.safe_open(str(half), framework="pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
    assert half.stat().st_size < 0.6 * full.stat().st_size
    ckpt = load_checkpoint(half)
    assert all(p.dtype == torch.float32 for p in ckpt.model.parameters())
    with torch.no_grad():
        diff = (ckpt.model(frame()) - model(frame())).abs().max().item()
    assert 0 < diff < 1e-2


def test_metadata_is_read_without_loading_tensors(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_model(), META)
    real_open = safetensors.safe_open

    class NoTensors:
        def __init__(self, *args, **kwargs):
            self._f = real_open(*args, **kwargs)

        def __enter__(self):
            self._f.__enter__()
            return self

        def __exit__(self, *exc):
            return self._f.__exit__(*exc)

        def metadata(self):
            return self._f.metadata()

        def get_tensor(self, key):
            raise AssertionError(f"read_metadata loaded tensor {key}")

    monkeypatch.setattr(safetensors, "safe_open", NoTensors)
    meta = read_metadata(path)
    assert meta["model"] == config_to_dict(TINY_STYLE)
    assert meta["name"] == "tiny" and meta["task"] == "style"


def _train_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    model.train()
    for step in steps:
        x = frame(seed=100 + step, size=(16, 16))
        loss = (model(x) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_optimizer_round_trip_continues_like_an_uninterrupted_run(tmp_path):
    model = tiny_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    _train_steps(model, opt, range(3))
    path = save_checkpoint(tmp_path / "train.safetensors", model, META, optimizer=opt)
    _train_steps(model, opt, range(3, 5))  # the uninterrupted run

    ckpt = load_checkpoint(path)
    resumed = ckpt.model
    resumed_opt = torch.optim.Adam(resumed.parameters(), lr=1.0)  # hyper-parameters come from the file
    restore_optimizer(ckpt, resumed_opt)
    assert resumed_opt.param_groups[0]["lr"] == 1e-2
    assert tuple(resumed_opt.param_groups[0]["betas"]) == (0.8, 0.95)
    _train_steps(resumed, resumed_opt, range(3, 5))

    for (name, a), b in zip(model.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name


def test_restore_optimizer_needs_a_training_checkpoint(tmp_path):
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", tiny_model(), META))
    with pytest.raises(CheckpointError, match="no optimiser state"):
        restore_optimizer(ckpt, torch.optim.Adam(ckpt.model.parameters()))


def test_optimizer_state_for_another_model_is_refused(tmp_path):
    model = tiny_model()
    opt = torch.optim.Adam(model.parameters())
    _train_steps(model, opt, range(1))
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "t.safetensors", model, META, optimizer=opt))
    other = build_model(SRNetConfig(width=8, num_residual=1))
    with pytest.raises(CheckpointError, match="does not fit"):
        restore_optimizer(ckpt, torch.optim.Adam(other.parameters()))


# ---- bad files --------------------------------------------------------------------------


def test_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file(tiny_model().state_dict(), str(path))
    with pytest.raises(CheckpointError, match="not an rtstyle checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [random.Random(0).randbytes(256), b"\x08" + bytes(7) + b"{}", b"just some text\n"],
    ids=["random-bytes", "truncated-header", "text"],
)
def test_corrupt_and_text_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.safetensors") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


def _save_with_header(path, header: dict) -> None:
    safetensors.torch.save_file({"x": torch.zeros(1)}, str(path), metadata=header)


@pytest.mark.parametrize(
    "header, match",
    [
        ({"format": "rtstyle-checkpoint", "version": "99", "rtstyle": "{}"}, "version 99"),
        ({"format": "rtstyle-checkpoint", "version": "1", "rtstyle": "{not json"}, "corrupt rtstyle metadata"),
        ({"format": "rtstyle-checkpoint", "version": "1", "rtstyle": json.dumps({"task": "gan", "model": {}})}, "task"),
    ],
)
def test_bad_headers_are_refused(tmp_path, header, match):
    path = tmp_path / "h.safetensors"
    _save_with_header(path, header)
    with pytest.raises(CheckpointError, match=match):
        read_metadata(path)


def test_wrong_task_names_both_tasks(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_model(), META)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, task="sr")
    assert "'style'" in str(info.value) and "'sr'" in str(info.value)


@pytest.mark.parametrize(
    "claimed, match",
    [(StyleNetConfig(width=16, num_residual=1), "has shape"), (StyleNetConfig(width=8, num_residual=2), "missing")],
)
def test_weights_that_do_not_match_the_config_are_refused(tmp_path, claimed, match):
    model = tiny_model()
    model.config = claimed  # the stored config now lies about the tensors
    path = save_checkpoint(tmp_path / "m.safetensors", model, META)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_unknown_arch_in_a_checkpoint_is_refused(tmp_path):
    meta = {"task": "style", "model": {"arch": "unet"}}
    path = tmp_path / "m.safetensors"
    _save_with_header(path, {"format": "rtstyle-checkpoint", "version": "1", "rtstyle": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="unknown model arch 'unet'"):
        load_checkpoint(path)


def test_save_rejects_a_missing_task(tmp_path):
    with pytest.raises(ValueError, match="task"):
        save_checkpoint(tmp_path / "m.safetensors", tiny_model(), {"name": "x"})
    assert not list(tmp_path.iterdir())


def test_failed_save_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_model(seed=0), META)
    before = path.read_bytes()

    def half_written(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_written)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tiny_model(seed=1), META)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "new.safetensors", tiny_model(seed=1), META)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    assert path.read_bytes() == before


# ---- issue 15: metadata is untrusted input ----------------------------------------------


def _checkpoint_with_meta(tmp_path, meta):
    path = tmp_path / "crafted.safetensors"
    _save_with_header(path, {"format": "rtstyle-checkpoint", "version": "1", "rtstyle": json.dumps(meta)})
    return path


@pytest.mark.parametrize(
    "meta, match",
    [
        ([1, 2, 3], "of type list; expected a JSON object"),
        ({"task": "style", "model": {"arch": {"nested": {"doc": 1}}}}, r"'arch' is \{'nested'"),
        ({"task": "style", "model": {"arch": "style", "width": "abc"}}, r"'width' is 'abc'; expected a int"),
        ({"task": "style", "model": {"arch": "style", "width": {"a": [1]}}}, r"'width' is \{'a': \[1\]\}"),
        ({"task": "style", "model": {"arch": "style", "num_residual": True}}, "'num_residual' is True"),
        ({"task": "style", "model": {"arch": "style", "width": 8.5}}, "'width' is 8.5"),
        ({"task": "style", "name": ["x"], "model": {"arch": "style"}}, "'name' is"),
        ({"task": "sr", "model": {"arch": "sr", "scale": "4"}}, "invalid model config|'scale'"),
    ],
)
def test_metadata_of_the_wrong_type_is_one_line(tmp_path, meta, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(_checkpoint_with_meta(tmp_path, meta))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("key, value", [("num_residual", 3000), ("width", 100_000), ("width", -4)])
def test_huge_network_configs_are_refused_before_building(tmp_path, monkeypatch, key, value):
    import rtstyle.checkpoint as checkpoint_module

    built = []
    monkeypatch.setattr(checkpoint_module, "build_model", lambda config: built.append(config))
    path = _checkpoint_with_meta(tmp_path, {"task": "style", "model": {"arch": "style", key: value}})
    with pytest.raises(CheckpointError, match=f"'{key}' is {value}; allowed 0..[0-9]+ \\(CONFIG_LIMITS\\)"):
        load_checkpoint(path)
    assert built == []


def test_config_within_limits_but_not_matching_allocates_nothing(tmp_path):
    # num_residual=60 is allowed, but the file holds one tensor: refused from the shapes alone,
    # with the network only ever built on the meta device.
    path = _checkpoint_with_meta(tmp_path, {"task": "style", "model": {"arch": "style", "width": 512, "num_residual": 60}})
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: far below the ~1.8 GB net


# ---- issue 27: headers and weights that would cost memory or give a grey picture -----------------


def _peak_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_a_header_above_the_bound_is_refused_before_it_is_parsed(tmp_path):
    """A 90 MB metadata document cost 1.1 GB to parse; its length, in the file's first 8 bytes,
    is checked first. The file is written in pieces, so the test itself holds none of it."""
    path = tmp_path / "big.safetensors"
    head, tail, filler = b'{"__metadata__":{"format":"rtstyle-checkpoint","version":"1","rtstyle":"', b'"}}', 90 * 2**20
    with path.open("wb") as f:
        f.write((len(head) + filler + len(tail)).to_bytes(8, "little") + head)
        for _ in range(filler // 2**20):
            f.write(b"x" * 2**20)
        f.write(tail)
    before = _peak_kib()
    for read in (read_metadata, load_checkpoint):
        with pytest.raises(CheckpointError, match=r"declares a 94,371,9[0-9,]+-byte header, above the 8,388,608") as info:
            read(path)
        assert "\n" not in str(info.value)
    assert _peak_kib() - before < 64 * 1024  # KiB: parsing it would take ~1 GB


def test_metadata_above_its_own_bound_is_refused(tmp_path):
    path = tmp_path / "notes.safetensors"
    save_checkpoint(path, tiny_model(), {**META, "notes": "x" * (2 * 2**20)})  # header within 8 MiB
    with pytest.raises(CheckpointError, match=r"[0-9,]+ bytes of rtstyle metadata, above the 1,048,576"):
        read_metadata(path)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_weights_are_refused_not_run_as_a_grey_picture(tmp_path, dtype):
    path = save_checkpoint(tmp_path / "int.safetensors", tiny_model(), META)
    tensors = safetensors.torch.load_file(str(path))
    key = next(k for k in tensors if k.endswith("weight"))
    tensors[key] = tensors[key].round().to(dtype)
    header = safetensors.safe_open(str(path), framework="pt").metadata()
    safetensors.torch.save_file(tensors, str(path), metadata=header)
    with pytest.raises(CheckpointError, match=f"{key} holds [A-Z0-9]+ values; weights must be floating point"):
        load_checkpoint(path)


def test_integer_buffers_the_model_itself_has_still_load(tmp_path):
    """BatchNorm's step counter is int64 in the model too (SR nets): only float-for-int is refused."""
    config = SRNetConfig(scale=2, width=8, num_residual=1)
    path = save_checkpoint(tmp_path / "sr.safetensors", tiny_model(config), {**META, "task": "sr"})
    with safetensors.safe_open(str(path), framework="pt") as f:
        assert any(f.get_slice(k).get_dtype() == "I64" for k in f.keys())
    assert load_checkpoint(path, "sr").config == config
