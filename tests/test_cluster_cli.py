"""``rtstyle stylize --ray`` argument handling that needs no cluster (and no Ray)."""

from __future__ import annotations

import sys

import pytest

from rtstyle.cli import main
from tests.helpers_video import make_clip


def _args(tmp_path, *extra):
    src = make_clip(tmp_path / "a.mp4", frames=2, audio=False)
    return ["stylize", str(src), "-o", str(tmp_path / "out"), "--model", "starry_night", "--no-progress", *extra]


def test_ray_without_the_extra_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when it is not installed
    assert main(_args(tmp_path, "--ray", "local")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'rtstyle[cluster]'" in err and "--ray" in err
    assert not (tmp_path / "out").exists()


def test_cluster_flags_need_ray(tmp_path, capsys):
    assert main(_args(tmp_path, "--workers", "2", "--skip-existing", "--stall-timeout", "5")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--workers, --skip-existing, --stall-timeout only work with --ray" in err


def test_bad_stall_timeout_is_one_line(tmp_path, capsys):
    pytest.importorskip("ray")
    assert main(_args(tmp_path, "--ray", "local", "--stall-timeout", "0")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--stall-timeout must be > 0" in err


def test_bad_ray_address_names_the_choices(tmp_path, capsys):
    assert main(_args(tmp_path, "--ray", "not an address")) == 2
    err = capsys.readouterr().err.strip()
    assert "local, auto or HOST:PORT" in err and len(err.splitlines()) == 1


def test_help_says_smoothing_restarts_at_segments(capsys):
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "temporal smoothing restarts at each segment boundary" in text and "--skip-existing" in text


def test_missing_model_and_preview_fail_before_any_cluster_starts(tmp_path, capsys):
    pytest.importorskip("ray")
    assert main(_args(tmp_path, "--ray", "local", "--model", "no_such_style")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_such_style" in err
    assert main(_args(tmp_path, "--ray", "local", "--preview")) == 2
    assert "--preview does not work with --ray" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
