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
