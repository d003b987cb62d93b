"""Progress output suits where it goes: bar on a terminal, plain lines in logs, JSON for programs."""

from __future__ import annotations

import io
import json

import pytest

from rtstyle.errors import InputError
from rtstyle.progress import LineProgress, NoProgress, progress, resolve_mode


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_bar_on_a_terminal_and_plain_elsewhere(monkeypatch):
    monkeypatch.delenv("RTSTYLE_PROGRESS", raising=False)
    assert resolve_mode("auto", _Tty()) == "bar"
    assert resolve_mode("auto", io.StringIO()) == "plain"
    monkeypatch.setenv("RTSTYLE_PROGRESS", "json")
    assert resolve_mode(None, _Tty()) == "json"
    with pytest.raises(InputError, match="choose from auto, bar, plain, json, none"):
        resolve_mode("fancy")


def test_plain_lines_have_no_carriage_returns():
    out = io.StringIO()
    bar = progress(10, "clip.mp4", mode="plain", stream=out)
    assert isinstance(bar, LineProgress)
    bar._interval = 0.0  # every update prints, as after PLAIN_INTERVAL_S in real use
    for _ in range(10):
        bar.update()
    bar.set_postfix(fps="12.0")
    bar.close()
    bar.close()  # idempotent: one final line
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 11
    assert lines[4].startswith("clip.mp4: 5/10 frames (50%)")
    assert "done in" in lines[-1] and "fps 12.0" in lines[-1]


def test_json_lines_parse():
    out = io.StringIO()
    with progress(None, "train", unit="it", mode="json", stream=out) as bar:
        bar.update(3)
    row = json.loads(out.getvalue().splitlines()[-1])
    assert row["done"] == 3 and row["final"] is True and row["total"] is None and row["unit"] == "it"


def test_none_is_silent_and_bar_is_tqdm():
    out = io.StringIO()
    quiet = progress(5, "x", mode="none", stream=out)
    assert isinstance(quiet, NoProgress)
    quiet.update(2)
    quiet.close()
    assert quiet.n == 2 and out.getvalue() == ""
    bar = progress(5, "x", mode="bar", stream=out, leave=True)
    bar.update(5)
    bar.close()
    assert "5/5" in out.getvalue()


def test_postfix_named_like_a_field_does_not_replace_it():
    # The trainer's loss terms include one called "total"; it used to replace the step total and
    # crash the plain line at its percentage.
    for mode in ("plain", "json"):
        out = io.StringIO()
        with progress(10, "train", unit="it", mode=mode, stream=out) as bar:
            bar.set_postfix({"total": "3.1", "content": "2.9"})
            bar.update(10)
        last = out.getvalue().splitlines()[-1]
        if mode == "plain":
            assert last.startswith("train: 10/10 its (100%)") and "content 2.9" in last
        else:
            row = json.loads(last)
            assert row["total"] == 10 and row["content"] == "2.9"
