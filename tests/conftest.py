"""Shared fixtures. Tests use tiny networks so the CPU suite stays fast; quality tests that
need the real architecture say so."""

from __future__ import annotations

import fnmatch
import os
import signal
from pathlib import Path

import pytest
import torch

from rtstyle.checkpoint import save_checkpoint
from rtstyle.nets import SRNetConfig, StyleNetConfig, build_model
from tests.helpers_signals import (
    changed_handlers,
    disable_signal_stack,
    fatal_handlers,
    restore_handlers,
    signal_stack_problem,
)

# A test run started in the background by a shell without job control (`nohup make test &`, a
# script's `cmd &`) inherits SIGINT ignored, and so would every CLI the tests start: Python then
# installs no KeyboardInterrupt handler and the tests' Ctrl-C cases (optimize, stylize, the
# cluster) wait for an interrupt that never comes. Give the run, and so its children, the
# terminal's default, as `make test` in a terminal or CI has (SIGHUP too: nohup ignores it, and the
# tests check that a hangup finalises outputs and that ignored signals stay ignored).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)

# Ray's driver puts its own handlers over faulthandler's for SIGSEGV, SIGABRT, ... and ray.shutdown()
# resets them to the default: every crash after the cluster tests would have been silent. Set before
# any test module imports ray (it reads this once).
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")

REPO = Path(__file__).resolve().parents[1]
SLOW_LIST = Path(__file__).with_name("slow.txt")
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLES = REPO / "rtstyle" / "assets"

TINY_STYLE = StyleNetConfig(width=8, num_residual=1)
TINY_SR = SRNetConfig(scale=4, width=8, num_residual=1)


def pytest_collection_modifyitems(config, items):
    """Mark the tests listed in tests/slow.txt ``slow``: ``make test-fast`` (-m "not slow") skips them."""
    patterns = [line.strip() for line in SLOW_LIST.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for item in items:
        nodeid = item.nodeid if item.nodeid.startswith("tests/") else f"tests/{item.nodeid}"
        if any(fnmatch.fnmatchcase(nodeid, pattern) for pattern in patterns):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def _cpu_threads():
    # Two cores here; more threads than cores only adds contention.
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True, scope="session")
def _fatal_handlers_at_start() -> dict:
    """faulthandler's handlers as pytest installed them (pyproject: faulthandler_timeout)."""
    return fatal_handlers()


@pytest.fixture(autouse=True)
def _signals_stay_deliverable(_fatal_handlers_at_start, request):
    # A crash must name its thread and frame, and a signal must find a stack to run on (issue 29;
    # tests/helpers_signals.py): the test that breaks either fails here, by name.
    yield
    problems = []
    if stack := signal_stack_problem():
        disable_signal_stack()  # one failure, not one per later test (or a crash at the next signal)
        problems.append(stack)
    if changed := changed_handlers(_fatal_handlers_at_start):
        restore_handlers(_fatal_handlers_at_start)  # one failure, not one per later test
        problems.append(f"the handlers of {', '.join(changed)} are no longer faulthandler's (restored now): "
                        "a crash would go unreported")
    if problems:
        pytest.fail(f"{request.node.nodeid} (or a fixture torn down just before it): " + "; ".join(problems),
                    pytrace=False)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache_for_module_fixtures(tmp_path_factory):
    # Module-scoped fixtures (an exported package, a built engine) run before the function-scoped
    # fixture below: they must not write to the user's cache (its trust list) either.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RTSTYLE_CACHE", str(tmp_path_factory.getbasetemp() / "rtstyle-cache"))
        yield


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Share one converted-VGG cache across the session, never the user's ~/.cache.
    monkeypatch.setenv("RTSTYLE_CACHE", str(tmp_path_factory.getbasetemp() / "rtstyle-cache"))


def _save(path: Path, config, task: str, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = build_model(config).eval()
    meta = {"task": task, "name": path.stem, "train": {"iterations": 0}}
    return save_checkpoint(path, model, meta)


@pytest.fixture
def tiny_style_ckpt(tmp_path) -> Path:
    """A randomly initialised tiny style network checkpoint."""
    return _save(tmp_path / "tiny_style.safetensors", TINY_STYLE, "style")


@pytest.fixture
def tiny_sr_ckpt(tmp_path) -> Path:
    """A randomly initialised tiny x4 SR network checkpoint."""
    return _save(tmp_path / "tiny_sr.safetensors", TINY_SR, "sr")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data when present (real photos, paintings, clips); skip otherwise."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    return SHARED_DATA
