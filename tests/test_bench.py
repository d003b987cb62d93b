"""rtstyle bench: a tiny end-to-end run with every output, and the arithmetic it reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rtstyle.benchmarks.bench import run_bench
from rtstyle.benchmarks.config import BenchConfig
from rtstyle.benchmarks.end_to_end import pipeline_efficiency
from rtstyle.benchmarks.flops import NORM_FLOPS_WITH_STATS, WorkCount, count_engine_work, count_work
from rtstyle.benchmarks.model_only import synthetic_frames
from rtstyle.benchmarks.reference import ReferenceStylizer
from rtstyle.benchmarks.report import write_outputs
from rtstyle.benchmarks.roofline import achieved_fraction, roofline_floor
from rtstyle.benchmarks.timing import percentile, rate, summarize, time_calls
from rtstyle.checkpoint import load_checkpoint, save_checkpoint
from rtstyle.cli import main
from rtstyle.engine import EngineOptions, open_engine
from rtstyle.errors import InputError
from rtstyle.nets import StyleNetConfig, build_model

TINY_STYLE = StyleNetConfig(width=8, num_residual=1)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny --quick-like run (tiny net, one resolution, 2 repetitions) and its written files."""
    tmp = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp / "tiny.safetensors", build_model(TINY_STYLE).eval(), {"task": "style"})
    config = BenchConfig(
        model=str(ckpt), device="cpu", backends=("torch", "tensorrt"), precisions=("fp32",), batch_sizes=(1, 2),
        resolutions=((40, 24),), warmup=0, repeats=2, rotate=2, clip_size=(40, 24), clip_frames=5,
        pipeline_batch=2, quick=True, progress=False,
    )
    result = run_bench(config)
    written = write_outputs(result, tmp / "out" / "bench.json")
    return result, written


def test_tiny_run_writes_json_with_every_field(tiny_run):
    _, written = tiny_run
    data = json.loads(written["json"].read_text())
    assert data["schema"] == "rtstyle-bench/1"
    for key in ("cpu", "cores", "memory_bytes", "load_average_before", "load_average_after", "torch_threads"):
        assert key in data["machine"]
    assert data["device"]["type"] == "cpu" and data["device"]["name"]
    for key in ("torch", "onnxruntime", "av", "rtstyle"):
        assert key in data["versions"]
    assert data["date"] and data["config"]["repeats"] == 2
    work = data["work"]["40x24"]["fp32"]
    assert work["flops"] > 0 and work["matmul_bytes"] > 0 and work["bytes"] > work["matmul_bytes"]
    assert data["ceilings"]["matmul_tflops"]["fp32"] > 0 and data["ceilings"]["copy_gbps"] > 0

    cells = data["model_only"]
    assert [(c["backend"], c["batch"], c["resolution"]) for c in cells] == [("torch", 1, "40x24"), ("torch", 2, "40x24")]
    for c in cells:
        assert "error" not in c
        assert c["seconds_per_call"]["n"] == 2
        assert c["fps"]["p10"] <= c["fps"]["median"] <= c["fps"]["p90"]
        assert c["roofline"]["floor_fps"] > 0 and c["roofline"]["achieved_fraction"] > 0
    assert [s["backend"] for s in data["skipped"]] == ["tensorrt"]

    (ref,) = data["reference"]
    assert ref["reference"]["fps"]["median"] > 0 and ref["speedup"] > 0

    pipe = data["pipeline"]
    assert set(pipe["stages"]) == {"decode", "engine", "encode"}
    assert pipe["end_to_end"]["frames"] == 5 and pipe["stages"]["decode"]["frames"] == 5
    assert pipe["efficiency"] == pytest.approx(pipe["end_to_end"]["fps"] / min(s["fps"] for s in pipe["stages"].values()))
    assert set(data["targets"]) == {"gpu_1080p_fp16_fps", "pipeline_efficiency", "speedup_vs_reference_cpu"}
    assert data["targets"]["gpu_1080p_fp16_fps"]["met"] is None  # not a GPU
    assert any("tensorrt" in n for n in data["notes"])


def test_tiny_run_writes_markdown_and_plots(tiny_run):
    _, written = tiny_run
    md = written["markdown"].read_text()
    assert "| torch | fp32 | 2 | 40x24 |" in md
    assert "Pipeline efficiency" in md and "speed-up" in md
    for key in ("fps", "stages"):
        assert written[key].read_bytes()[:8] == PNG_MAGIC
        assert f"({written[key].name})" in md


def test_hand_count_conv_and_instance_norm():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.InstanceNorm2d(8, affine=True))
    count = count_work(net, torch.rand(1, 3, 10, 12))
    # 2 FLOPs per multiply-accumulate: (3 in-channels x 3 x 3) per output element, 8 x 10 x 12 outputs.
    assert count.flops == 2 * (3 * 3 * 3) * (8 * 10 * 12)
    assert count.other_flops == NORM_FLOPS_WITH_STATS * (8 * 10 * 12)
    with FlopCounterMode(display=False) as reference, torch.no_grad():
        net(torch.rand(1, 3, 10, 12))
    assert count.flops == reference.get_total_flops()


def test_hand_count_strided_conv_and_bytes():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU())
    count = count_work(net, torch.rand(2, 3, 11, 13))
    out_elems = 2 * 4 * 5 * 6  # (11 - 3) // 2 + 1 = 5, (13 - 3) // 2 + 1 = 6
    assert count.flops == 2 * 27 * out_elems
    conv_read = 4 * (2 * 3 * 11 * 13 + 4 * 27 + 4)  # input, weight, bias in fp32
    assert count.matmul_bytes == conv_read + 4 * out_elems
    assert count.bytes_read == conv_read + 4 * out_elems  # ReLU reads the conv output
    assert count.bytes_written == 2 * 4 * out_elems
    assert count.other_flops == out_elems  # one per ReLU output


def test_engine_count_on_meta_matches_real_tensors(tiny_style_ckpt):
    model = load_checkpoint(tiny_style_ckpt).model
    meta = count_engine_work(model, 2, 20, 28)
    from rtstyle.frames import to_float, to_uint8

    real = count_work(lambda f: to_uint8(model(to_float(f))), torch.zeros(2, 20, 28, 3, dtype=torch.uint8))
    assert (meta.flops, meta.matmul_bytes) == (real.flops, real.matmul_bytes)
    # Real CPU convolutions keep the channels-last layout of the permuted input, and a later op
    # copies it back; meta kernels do not, so only the unfused total may differ, slightly.
    assert meta.bytes == pytest.approx(real.bytes, rel=0.05)
    half = count_engine_work(model, 2, 20, 28, torch.float16)
    assert half.flops == meta.flops and half.matmul_bytes < meta.matmul_bytes
    assert next(model.parameters()).device.type == "cpu"  # counted on a copy


def test_efficiency_arithmetic():
    eff = pipeline_efficiency(8.0, {"decode": 100.0, "engine": 10.0, "encode": 50.0})
    assert eff["slowest_stage"] == "engine" and eff["slowest_fps"] == 10.0
    assert eff["efficiency"] == pytest.approx(0.8)
    with pytest.raises(ValueError):
        pipeline_efficiency(8.0, {"decode": 0.0})


def test_roofline_floor_arithmetic():
    work = WorkCount(flops=2_000_000_000, bytes_read=300_000_000, bytes_written=100_000_000, matmul_bytes=100_000_000)
    compute_bound = roofline_floor(work, matmul_flops_per_s=1e12, copy_bytes_per_s=1e11)
    assert compute_bound.compute_s == pytest.approx(2e-3) and compute_bound.memory_s == pytest.approx(1e-3)
    assert compute_bound.floor_s == pytest.approx(2e-3) and compute_bound.bound == "compute"
    assert compute_bound.fps == pytest.approx(500.0)
    assert compute_bound.unfused_memory_s == pytest.approx(4e-3)
    memory_bound = roofline_floor(work, matmul_flops_per_s=1e13, copy_bytes_per_s=1e10)
    assert memory_bound.floor_s == pytest.approx(1e-2) and memory_bound.bound == "memory"
    assert achieved_fraction(2e-3, 8e-3) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        roofline_floor(work, 0.0, 1e10)


def test_timing_statistics_and_rotation():
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 10) == pytest.approx(1.4)
    s = summarize([0.1, 0.2, 0.4])
    assert s["median"] == 0.2 and s["n"] == 3 and s["min"] == 0.1
    fps = rate(4, s)
    assert fps["median"] == pytest.approx(20.0) and fps["p10"] < fps["median"] < fps["p90"]
    seen = []
    samples = time_calls(seen.append, ["a", "b", "c"], torch.device("cpu"), warmup=2, repeats=4)
    assert seen == ["a", "b", "c", "a", "b", "c"] and len(samples) == 4


def test_reference_matches_the_torch_engine(tiny_style_ckpt):
    frame = synthetic_frames(1, 36, 20)[0]
    ref = ReferenceStylizer(load_checkpoint(tiny_style_ckpt).model, torch.device("cpu"))(frame)
    engine = open_engine(tiny_style_ckpt, "torch", EngineOptions(device="cpu", precision="fp32"))
    out = engine(torch.from_numpy(frame[None])).numpy()[0]
    assert ref.shape == frame.shape and ref.dtype == np.uint8
    assert np.abs(ref.astype(int) - out.astype(int)).max() <= 1


def test_bad_inputs_are_one_line_errors(capsys):
    with pytest.raises(InputError, match="unknown --arch"):
        BenchConfig(arch="resnet")
    with pytest.raises(InputError, match="at least 16x16"):
        BenchConfig(resolutions=((8, 8),))
    with pytest.raises(InputError, match="unknown backend"):
        BenchConfig(backends=("tflite",))
    assert main(["bench", "--json", "out.txt"]) == 2
    assert "ending in .json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--resolutions", "640x"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tiny_run_on_gpu(tiny_style_ckpt):
    result = run_bench(BenchConfig(
        model=str(tiny_style_ckpt), device="cuda", backends=("torch",), batch_sizes=(2,), resolutions=((64, 48),),
        warmup=1, repeats=2, rotate=2, clip_size=(64, 48), clip_frames=4, pipeline_batch=2, quick=True, progress=False,
    ))
    assert {c["precision"] for c in result["model_only"]} == {"fp16", "bf16"}
    assert all("error" not in c and c["roofline"]["achieved_fraction"] > 0 for c in result["model_only"])
    assert result["ceilings"]["matmul_tflops"]["fp16"] > 0
    assert result["pipeline"]["engine"]["description"].startswith("torch on cuda")
    assert set(result["targets"]) == {"gpu_1080p_fp16_fps", "pipeline_efficiency", "speedup_vs_reference_gpu"}


def test_tensorrt_profile_covers_the_whole_grid():
    from rtstyle.benchmarks.model_only import tensorrt_profile

    cfg = BenchConfig(resolutions=((640, 360), (1920, 1080), (1280, 720)), batch_sizes=(1, 4, 8))
    assert tensorrt_profile(1, cfg) == ((1, 360, 640, 3), (8, 1080, 1920, 3), (8, 1080, 1920, 3))
    # SR resolutions name the output: the engine sees 1/scale of them.
    assert tensorrt_profile(4, cfg)[2] == (8, 270, 480, 3)


@pytest.mark.slow  # one C++ compile: about a minute on two cores
def test_bench_exports_and_times_an_aoti_package(tmp_path):
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", build_model(TINY_STYLE).eval(), {"task": "style"})
    result = run_bench(BenchConfig(
        model=str(ckpt), device="cpu", backends=("aoti",), precisions=("fp32",), batch_sizes=(1,),
        resolutions=((40, 24),), warmup=0, repeats=2, rotate=2, clip_size=(40, 24), clip_frames=3,
        pipeline_batch=1, quick=True, progress=False,
    ))
    assert not result["skipped"], result["skipped"]
    (cell,) = result["model_only"]
    assert cell["backend"] == "aoti" and "error" not in cell and cell["fps"]["median"] > 0


def test_noise_assessment_refuses_verdicts_on_a_busy_machine():
    from rtstyle.benchmarks.timing import assess_noise, relative_spread

    quiet = summarize([0.100, 0.101, 0.102, 0.100, 0.101])
    noisy = summarize([0.10, 0.25, 0.11, 0.40, 0.12])
    assert relative_spread(quiet) < 0.05 and relative_spread(noisy) > 1.0
    assert assess_noise([relative_spread(quiet)], [0.3, 0.2, 0.1], 2)["reliable"]
    busy = assess_noise([relative_spread(noisy)], [5.8, 4.0, 2.0], 2, floor_shares=[2.6])
    assert not busy["reliable"]
    text = " ".join(busy["reasons"])
    assert "spread" in text and "load average 5.80 on 2 cores" in text and "260%" in text


def test_busy_cores_not_load_average_decide_when_known():
    import subprocess
    import sys

    from rtstyle.benchmarks.environment import busy_cores
    from rtstyle.benchmarks.timing import assess_noise

    # A high load average left by a benchmark that just finished does not make a quiet machine noisy...
    assert assess_noise([0.01], [1.9, 1.8, 1.7], 2, busy_before=0.05)["reliable"]
    # ...while other processes busy right now do, and the reason says how many cores they took.
    noisy = assess_noise([0.01], [0.1, 0.1, 0.1], 2, busy_before=1.6)
    assert not noisy["reliable"] and "1.60 of 2 cores busy" in noisy["reasons"][0]
    # The measurement sees a process that spins on a core while it sleeps.
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"])
    try:
        busy = busy_cores(1.0)
    finally:
        spinner.wait()
    assert busy is not None and busy >= 0.5


def test_noisy_run_reports_figures_but_no_verdicts(tiny_run):
    from rtstyle.benchmarks.bench import _targets
    from rtstyle.benchmarks.report import markdown_report

    result, _ = tiny_run
    noisy = {**result, "noise": {"reliable": False, "reasons": ["load average 5.80 on 2 cores before the run"]}}
    targets = _targets(noisy)
    assert all(t["met"] is None for t in targets.values())
    assert targets["pipeline_efficiency"]["measured"] == result["pipeline"]["efficiency"]  # figure kept
    md = markdown_report({**noisy, "targets": targets})
    assert "no verdict: noisy machine" in md and "Unreliable figures" in md
    assert "| met |" not in md and "| not met |" not in md


def test_quick_duration_is_the_same_in_help_and_readme():
    from rtstyle.choices import BENCH_QUICK_DURATION

    from .conftest import REPO

    assert BENCH_QUICK_DURATION in (REPO / "README.md").read_text()
    from rtstyle.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["bench"].format_help()
    assert " ".join(BENCH_QUICK_DURATION.split()) in " ".join(help_text.split())
