"""Two Ray nodes started with plain ``ray start`` (the README's recipe), each in a network namespace
with only ``lo`` (``tests/netns_cluster.py``): a node lost mid-job, a job over every container
with one worker, a last single file, a finished job rerun, token authentication, and a cluster left
with no node that can host a worker."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.conftest import TINY_STYLE, _save
from tests.helpers_cluster import make_mixed_folder
from tests.helpers_video import make_clip
from tests.netns_cluster import namespaces_unavailable, run_scenario

pytest.importorskip("ray")
_why = namespaces_unavailable()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")

TIMEOUT_S = 900  # a whole scenario on two loaded cores; it takes a few minutes at most


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    work = tmp_path_factory.mktemp("two_nodes")
    make_mixed_folder(work / "clips")
    (work / "four").mkdir()
    for i in range(4):
        make_clip(work / "four" / f"{i}.mp4", frames=8, size=(40, 32), audio=False)
    _save(work / "tiny.safetensors", TINY_STYLE, "style")
    record = run_scenario("two_nodes", work, TIMEOUT_S)
    assert "error" not in record, record.get("error")
    return record


def _ok(step: dict) -> bool:
    return step["rc"] == 0


def _videos(files: dict) -> dict:
    return {name: f for name, f in files.items() if not name.startswith(".")}


def test_a_quiet_job_over_every_container_with_one_worker(two_nodes):
    """``--workers 1`` on two 1-CPU nodes starts (it used to ask for 2 CPUs), ``-q`` prints nothing
    but the inputs' warnings (a single-machine run gives the same), and every output (MP4, MKV, MOV,
    WebM, AVI with packed B-frames, GIF in) is whole and tagged."""
    step = two_nodes["steps"]["quiet"]
    assert _ok(step), step["stderr"]
    assert step["stdout"] == "" and all(line.startswith("warning: ") for line in step["stderr"].splitlines()), step
    files = two_nodes["after_quiet"]
    assert sorted(files) == ["a_tiny.mp4", "b_tiny.mp4", "c_tiny.mp4", "d_tiny.mp4", "e_tiny.mp4", "f_tiny.gif"]
    for name, f in files.items():
        assert f["tag"] == {"frames": f["frames"], "end": "done"} and f["frames"] >= 8, (name, f)


def test_a_last_single_file_starts_and_skip_existing_rewrites_nothing(two_nodes):
    """The README's ``--ray auto --skip-existing`` run after one output was lost: only that file runs
    (one file on two 1-CPU nodes used to ask for 2 CPUs); a rerun of the finished job rewrites nothing
    and needs no worker at all."""
    step = two_nodes["steps"]["last_file"]
    assert _ok(step), step["stderr"]
    assert "1 done, 5 skipped, 0 failed" in step["stdout"], step["stdout"]
    before, after = _videos(two_nodes["after_quiet"]), _videos(two_nodes["after_last_file"])
    lost = two_nodes["lost"]
    assert sorted(before) == sorted(after)
    assert all(after[n] == before[n] for n in before if n != lost), "a complete output was rewritten"
    assert after[lost]["tag"]["end"] == "done"
    stats = two_nodes["last_file_stats"]["cluster"]
    assert stats["resources"]["per_worker"] == {"CPU": 1.0} and stats["resources"]["workers"] == 2
    finished = two_nodes["steps"]["finished"]
    assert _ok(finished) and "0 done, 6 skipped, 0 failed" in finished["stdout"], finished
    assert _videos(two_nodes["after_finished"]) == after


def test_a_node_lost_mid_job_costs_its_file_a_retry(two_nodes):
    """The second node's raylet killed (by pid) while its worker stylizes: Ray reruns that file on the
    surviving node, the job finishes, every output is whole and nothing half-written is left."""
    result, stats = two_nodes["nodeloss"], two_nodes["nodeloss_stats"]
    assert "error" not in result and result["failed"] == [], result
    assert stats["cluster"]["done"] == 4 and stats["cluster"]["retries"] >= 1, stats["cluster"]
    assert any("lost" in note for note in result["notes"]), result["notes"]
    files = two_nodes["after_nodeloss"]
    assert sorted(files) == [f"{i}_tiny.mp4" for i in range(4)], files  # no hidden partial files either
    assert all(f["frames"] == 8 and f["tag"] == {"frames": 8, "end": "done"} for f in files.values()), files


@pytest.fixture(scope="module")
def token_and_stall(tmp_path_factory):
    work = tmp_path_factory.mktemp("token_and_stall")
    (work / "clips").mkdir()
    make_clip(work / "clips" / "one.mp4", frames=6, size=(40, 32), audio=False)
    (work / "two").mkdir()
    for name, frames in (("long.mp4", 40), ("short.mp4", 8)):
        make_clip(work / "two" / name, frames=frames, size=(40, 32), audio=False)
    _save(work / "tiny.safetensors", TINY_STYLE, "style")
    record = run_scenario("token_and_stall", work, TIMEOUT_S)
    assert "error" not in record, record.get("error")
    shutil.rmtree(work / "stranger", ignore_errors=True)
    return record


def test_token_authentication_joins_and_its_failures(token_and_stall):
    """Ray's token authentication (a token in the head's home): without a token and with a wrong
    one, one clear line each (within the step's bounded wait: Ray's connect window is shortened to 3 s
    there, rather than minutes of retries); with the user's ~/.ray/auth_token (RAY_AUTH_MODE unset) the
    job joins and runs."""
    steps = token_and_stall["steps"]
    assert _ok(steps["head"]), steps["head"]
    none, wrong = steps["no_token"], steps["wrong_token"]
    for step in (none, wrong):
        lines = [line for line in step["stderr"].splitlines() if line.startswith("rtstyle stylize:")]
        assert step["rc"] == 2 and len(lines) == 1, step
        assert "token authentication" in lines[0] and "RAY_AUTH_TOKEN" in lines[0], lines
    assert "no token was found" in none["stderr"] or "it has no token" in none["stderr"], none["stderr"]
    assert "refused" in wrong["stderr"] and "sent the token from RAY_AUTH_TOKEN" in wrong["stderr"], wrong["stderr"]
    ok = steps["with_token"]
    assert _ok(ok) and ok["stdout"] == "" and ok["stderr"] == "", ok  # -q on a clean input: not a line
    assert token_and_stall["after_with_token"]["one_tiny.mp4"]["tag"] == {"frames": 6, "end": "done"}


def test_no_node_left_to_host_a_worker_ends_the_job_in_bounded_time(token_and_stall):
    """The only node with CPUs lost mid-job (the head has none): the job says so and ends within the
    stall timeout (plus Ray's node-death detection) instead of waiting for ever; the file that was
    running is reported failed, and no hidden partial file is left."""
    result, stats = token_and_stall["stall"], token_and_stall["stall_stats"]
    assert "error" not in result, result
    assert result["failed"] and all("no node could host a worker" in why for why in result["failed"]), result
    assert any("no alive node can host a worker" in note for note in result["notes"]), result["notes"]
    # bounded: the stall timeout (4 s) after Ray declares the node dead (about 2 s here), plus the
    # driver's ticks; generous, as the machine may be loaded (without the stall check it never ends)
    waited = result["ended"] - token_and_stall["killed"]["at"]
    assert waited < 240, f"{waited:.1f} s from the node's loss to the job's end"
    assert stats["cluster"]["failed"] == len(result["failed"]) >= 1
    files = token_and_stall["after_stall"]
    assert not [name for name in files if name.startswith(".")], files
    for name, f in files.items():  # what finished before the loss stays, whole
        assert f["tag"] == {"frames": f["frames"], "end": "done"}, (name, f)
    assert re.search(r"no node could host a worker \(\{'CPU': 1.0\}\) for 4 s", result["failed"][0])
