"""``--backend auto`` on a CPU: the choice logic with injected timings (no timing asserts), the
per-machine cache of measurements, and the opt-out."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import pytest

from rtstyle import backend_choice
from rtstyle.backend_choice import cache_path, choice_key, pick_fastest
from rtstyle.conditioning import StyleChoice
from rtstyle.engine import EngineOptions, OpenVINOOptions, TorchOptions, cpu_candidates, open_engine

pytest.importorskip("openvino")

CPU = EngineOptions(device="cpu")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RTSTYLE_CACHE", str(tmp_path / "cache"))  # no measurement left by other tests


class Load:
    """The machine's other work as the choice sees it, set by a test (this machine's real load
    changes from second to second: a cached measurement must not be re-taken by chance)."""

    during = 0.0  # cores other processes keep busy while the backends are measured
    now = 0.0  # ... when a later run looks


@pytest.fixture(autouse=True)
def load(monkeypatch) -> type[Load]:
    class Meter:
        cores = None

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.cores = Load.during

    monkeypatch.setattr(Load, "during", 0.0)
    monkeypatch.setattr(Load, "now", 0.0)
    monkeypatch.setattr(backend_choice, "OtherLoad", Meter)
    monkeypatch.setattr(backend_choice, "_other_cores_now", lambda: Load.now)
    return Load


def test_pick_fastest_takes_the_fewest_ms_per_frame_and_ignores_failures():
    assert pick_fastest({"torch": 95.0, "openvino": 41.0}) == "openvino"
    assert pick_fastest({"torch": 40.0, "openvino": 41.0}) == "torch"
    assert pick_fastest({"torch": None, "openvino": 41.0}) == "openvino"
    assert pick_fastest({"torch": 50.0, "openvino": 50.0}) == "torch"  # a tie keeps the preferred one
    assert pick_fastest({"torch": float("nan"), "openvino": 0.0, "onnxruntime": 7.0}) == "onnxruntime"
    with pytest.raises(ValueError):
        pick_fastest({"torch": None})


def test_candidates_follow_the_file_kind_and_the_device(tiny_style_ckpt, tmp_path):
    assert cpu_candidates(tiny_style_ckpt, CPU) == ["torch", "openvino"]
    assert cpu_candidates(tmp_path / "m.onnx", CPU) == ["onnxruntime", "openvino"]
    assert cpu_candidates(tmp_path / "m.pt2", CPU) == []
    assert cpu_candidates(tiny_style_ckpt, EngineOptions(device="cuda")) == []
    # AdaIN style images switch live only in torch
    assert cpu_candidates(tiny_style_ckpt, EngineOptions(device="cpu", style=StyleChoice(style_image=Path("s.jpg")))) == ["torch"]


def fake_timings(monkeypatch, ms: dict[str, float]) -> list[str]:
    calls: list[str] = []

    def measure(engine, batch):
        calls.append(engine.backend)
        return ms[engine.backend]

    monkeypatch.setattr(backend_choice, "measure", measure)
    return calls


@pytest.mark.parametrize("fastest", ["openvino", "torch"])
def test_auto_opens_the_measured_fastest_and_caches_the_measurement(tiny_style_ckpt, monkeypatch, fastest):
    ms = {"torch": 90.0, "openvino": 40.0} if fastest == "openvino" else {"torch": 30.0, "openvino": 40.0}
    calls = fake_timings(monkeypatch, ms)
    eng = open_engine(tiny_style_ckpt, "auto", CPU)
    assert eng.backend == fastest and sorted(calls) == ["openvino", "torch"]
    assert "openvino 40 ms/frame" in eng.reason and "measured now" in eng.reason
    assert cache_path().is_file()
    # Later opens read the cache: no measurement, even if the timings would now differ.
    calls.clear()
    monkeypatch.setattr(backend_choice, "measure", lambda engine, batch: pytest.fail("measured again"))
    again = open_engine(tiny_style_ckpt, "auto", CPU)
    assert again.backend == fastest and "cached measurement" in again.reason
    # Another batch size is the same choice (so the output does not change with it); another precision is not.
    assert open_engine(tiny_style_ckpt, "auto", EngineOptions(device="cpu", batch_size=1)).backend == fastest
    fake_timings(monkeypatch, {"torch": 10.0, "openvino": 20.0} if fastest == "openvino" else {"torch": 50.0, "openvino": 20.0})
    other = "torch" if fastest == "openvino" else "openvino"
    assert open_engine(tiny_style_ckpt, "auto", EngineOptions(device="cpu", precision="fp32")).backend == other


def test_the_key_covers_model_setting_and_versions(monkeypatch):
    base = choice_key("abc", ["torch", "openvino"], "auto")
    assert base == choice_key("abc", ["torch", "openvino"], "auto")
    assert len({base, choice_key("abd", ["torch", "openvino"], "auto"),
                choice_key("abc", ["torch", "openvino"], "bf16"),
                choice_key("abc", ["torch"], "auto"),
                choice_key("abc", ["torch", "openvino"], "auto", (640, 360)),
                choice_key("abc", ["torch", "openvino"], "auto", batch=1)}) == 6
    monkeypatch.setattr(backend_choice, "library_versions", lambda: {"openvino": "2099.1"})
    assert choice_key("abc", ["torch", "openvino"], "auto") != base
    monkeypatch.setattr(backend_choice, "cpu_model", lambda: "another CPU")
    assert choice_key("abc", ["torch", "openvino"], "auto") != base


def test_a_backend_that_cannot_open_the_model_is_skipped(tiny_style_ckpt, monkeypatch):
    fake_timings(monkeypatch, {"torch": 90.0, "openvino": 40.0})
    # torch on the CPU has no fp16: only OpenVINO... which refuses fp16 on the CPU too -> its error
    with pytest.raises(Exception, match="fp16"):
        open_engine(tiny_style_ckpt, "auto", EngineOptions(device="cpu", precision="fp16"))
    from rtstyle.backends import openvino_backend

    def refuse(path, options, reason):
        raise openvino_backend.BackendUnavailableError("no openvino today")

    monkeypatch.setattr(openvino_backend, "open", refuse)
    eng = open_engine(tiny_style_ckpt, "auto", EngineOptions(device="cpu", precision="fp32"))
    assert eng.backend == "torch" and "openvino could not open it" in eng.reason


def test_one_backends_options_name_the_backend(tiny_style_ckpt, monkeypatch):
    monkeypatch.setattr(backend_choice, "measure", lambda engine, batch: pytest.fail("measured"))
    eng = open_engine(tiny_style_ckpt, "auto", EngineOptions(device="cpu", backend_options=OpenVINOOptions(threads=1)))
    assert eng.backend == "openvino" and "OpenVINOOptions given" in eng.reason
    assert open_engine(tiny_style_ckpt, "auto", EngineOptions(device="cpu", backend_options=TorchOptions())).backend == "torch"


def test_measuring_can_be_switched_off(tiny_style_ckpt, monkeypatch):
    monkeypatch.setenv("RTSTYLE_AUTO_MEASURE", "0")
    monkeypatch.setattr(backend_choice, "measure", lambda engine, batch: pytest.fail("measured"))
    eng = open_engine(tiny_style_ckpt, "auto", CPU)
    assert eng.backend == "torch" and "no CUDA GPU" in eng.reason


def test_real_measurement_returns_a_positive_rate(tiny_style_ckpt):
    eng = open_engine(tiny_style_ckpt, "openvino", CPU)
    assert backend_choice.measure(eng, 2, size=(64, 48), calls=2) > 0


def _cached_entry() -> dict:
    (entry,) = json.loads(cache_path().read_text()).values()
    return entry


def _rewrite_entry(**fields) -> None:
    data = json.loads(cache_path().read_text())
    for entry in data.values():
        entry.update(fields)
        for name in [k for k, v in fields.items() if v is _DROP]:
            del entry[name]
    cache_path().write_text(json.dumps(data))


_DROP = "drop this field"


def test_a_timing_taken_under_load_is_measured_again_once_the_machine_is_quiet(tiny_style_ckpt, monkeypatch, load):
    calls = fake_timings(monkeypatch, {"torch": 30.0, "openvino": 40.0})
    load.during = 1.5  # other processes kept 1.5 cores busy: the ranking may be wrong
    eng = open_engine(tiny_style_ckpt, "auto", CPU)
    assert _cached_entry()["other_cores"] == 1.5 and "kept 1.50 cores busy" in eng.reason
    # Still busy: measuring again would be no better; the cached timing stands and says it was loaded.
    load.now = 1.2
    calls.clear()
    again = open_engine(tiny_style_ckpt, "auto", CPU)
    assert not calls and "cached measurement" in again.reason and "kept 1.50 cores busy" in again.reason
    # Quiet now: measured again, and the quiet timing replaces the loaded one for good.
    load.now, load.during = 0.05, 0.0
    fake_timings(monkeypatch, {"torch": 30.0, "openvino": 20.0})
    assert open_engine(tiny_style_ckpt, "auto", CPU).backend == "openvino"
    assert _cached_entry()["other_cores"] == 0.0 and _cached_entry()["backend"] == "openvino"
    calls = fake_timings(monkeypatch, {"torch": 1.0, "openvino": 2.0})
    assert open_engine(tiny_style_ckpt, "auto", CPU).backend == "openvino" and not calls


@pytest.mark.parametrize("stale", ["old", "no_load_record", "undated"])
def test_an_old_or_unrecorded_timing_is_measured_again(tiny_style_ckpt, monkeypatch, stale):
    fake_timings(monkeypatch, {"torch": 30.0, "openvino": 40.0})
    open_engine(tiny_style_ckpt, "auto", CPU)
    old = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=backend_choice.MAX_AGE_DAYS + 1)).isoformat()
    _rewrite_entry(**{"old": {"measured_at": old}, "no_load_record": {"other_cores": _DROP},
                      "undated": {"measured_at": "?"}}[stale])
    calls = fake_timings(monkeypatch, {"torch": 30.0, "openvino": 20.0})
    eng = open_engine(tiny_style_ckpt, "auto", CPU)
    assert sorted(calls) == ["openvino", "torch"] and eng.backend == "openvino" and "measured now" in eng.reason
    reason = backend_choice.measure_again({"measured_at": old, "other_cores": 0.0})
    assert reason is not None and f"{backend_choice.MAX_AGE_DAYS + 1} days old" in reason


def test_the_load_meter_sees_other_processes():
    import subprocess
    import sys
    import time

    from rtstyle.sysinfo import OtherLoad

    spinner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 2: pass"])
    try:
        time.sleep(0.3)
        with OtherLoad() as other:
            time.sleep(1.0)
    finally:
        spinner.wait()
    if other.cores is None:
        pytest.skip("this OS does not report CPU time (no /proc/stat)")
    assert other.cores >= 0.5
