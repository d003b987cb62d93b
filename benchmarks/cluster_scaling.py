"""Throughput of ``rtstyle stylize --ray`` on this machine, and an estimate for N GPUs.

Measured here (CPU, a private Ray cluster on 127.0.0.1):

* the plain single-machine run (``stylize_files``) on a folder of generated clips;
* the same files with ``--ray`` and 1 and 2 workers: files/s, frames/s, the start-up (actors and
  engines) and the overhead against the plain run;
* the per-frame costs the estimate needs: engine FLOPs per 1080p frame (counted, not timed),
  1080p decode and encode fps on this CPU, and the bytes per frame a stream reads and writes.

The estimate for N GPUs (the per-GPU engine rate is derived from the FLOP count at assumed
effective TFLOPS, stated in the output with the one GPU measured so far, an H200) is
``N x min(engine fps, CPU cores per GPU x per-core decode+encode fps)``, capped by the shared
storage bandwidth divided by the bytes per frame. Writes ``<out>.json`` and ``<out>.md``::

    python -m rtstyle.benchmarks.cluster_scaling --out benchmarks/results/cluster-scaling
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from rtstyle.argparsing import ArgumentParser

from .environment import machine_line
from .flops import count_engine_work
from .report import write_result

ASSUMED_TFLOPS = (25.0, 100.0, 300.0)  # effective fp16 TFLOPS of an engine call: mid-range GPU, A100/L40S-, H100/H200-class
# What torch (fp16, CUDA graphs, batch 8) reached at 1080p on an NVIDIA H200, 2026-12-04
# (benchmarks/results/nvidia-h200-2026-12-04.md): the assumptions above are well-fused engines'.
MEASURED_H200_TFLOPS = {"starry_night": 17.5, "the Johnson-size net": 39.6}
ASSUMED_CORES_PER_GPU = 8
ASSUMED_STORAGE_GBPS = (1.0, 10.0)  # GB/s of shared storage: a NAS, a parallel filesystem
ASSUMED_NVENC_FPS = 300.0  # 1080p H.264 encode+decode on the GPU's own codec engines (--codec h264_nvenc); an assumption


def _pattern(i: int, width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = np.random.default_rng(i).integers(0, 24, (height, width, 1))
    img = np.stack([128 + 100 * np.sin((x + 3 * i) / 17.0), 128 + 100 * np.cos((y + 2 * i) / 13.0),
                    np.full_like(x, (40 + 9 * i) % 256)], -1) + noise
    return img.clip(0, 255).astype(np.uint8)


def make_clip(path: Path, frames: int, size: tuple[int, int], fps: int = 24, crf: int = 18,
              preset: str = "veryfast") -> Path:
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        vs.codec_context.options = {"crf": str(crf), "preset": preset}
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(_pattern(i, *size), format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = round(1000 * i / fps), Fraction(1, 1000)
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


def codec_rates(folder: Path, frames: int = 24) -> dict:
    """1080p decode and encode (libx264 medium, crf 18: the stylize defaults) fps on this CPU, and bytes/frame."""
    import av

    from rtstyle.video import EncoderConfig, VideoWriter

    src = make_clip(folder / "hd.mp4", frames, (1920, 1080), preset="medium")
    t0 = time.perf_counter()
    with av.open(str(src)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()  # the writer rtstyle stylize uses, frames ready in memory
    writer = VideoWriter(folder / "hd2.mp4", 1920, 1080, Fraction(1, 1000), Fraction(24), EncoderConfig())
    for i, img in enumerate(decoded):
        writer.write(img, round(1000 * i / 24))
    writer.close()
    encode_s = time.perf_counter() - t0
    # a lossless segment file (the join's intermediate), same frames
    from rtstyle.cluster.segments import PartWriter

    writer = PartWriter(folder / "part.mkv")
    for img in decoded:
        writer.write(img)
    writer.close(keep=True)
    return {"frames": frames, "decode_fps": frames / decode_s, "encode_fps": frames / encode_s,
            "h264_bytes_per_frame": src.stat().st_size / frames,
            "ffv1_bytes_per_frame": (folder / "part.mkv").stat().st_size / frames,
            "note": "synthetic content (smooth pattern + noise)"}


def engine_flops_1080p(model: str) -> dict:
    from rtstyle.checkpoint import load_checkpoint
    from rtstyle.models import resolve_model

    work = count_engine_work(load_checkpoint(resolve_model(model)).model, 1, 1080, 1920, torch.float16)
    return {"model": model, "gflops_per_frame": work.flops / 1e9, "other_gflops_per_frame": work.other_flops / 1e9}


def run(out: Path, clips: int, frames: int, size: tuple[int, int], model: str) -> dict:
    from rtstyle.cluster import ClusterConfig, run_cluster, start_local
    from rtstyle.stylize import StylizeConfig, stylize_files
    from rtstyle.video import EncoderConfig

    root = Path(tempfile.mkdtemp(prefix="rtstyle-cluster-bench-"))
    try:
        folder = root / "clips"
        folder.mkdir()
        for i in range(clips):
            make_clip(folder / f"clip{i:02d}.mp4", frames, size)
        config = StylizeConfig(inputs=(folder,), model=model, output=root / "single", device="cpu", progress=False,
                               encoder=EncoderConfig(preset="veryfast"))
        result: dict = {"machine": machine_line(), "date": _dt.date.today().isoformat(),
                        "files": clips, "frames_per_file": frames, "size": list(size), "model": model,
                        "load_before": os.getloadavg()}
        t0 = time.perf_counter()
        done = stylize_files(config)
        single = time.perf_counter() - t0
        total = sum(r.frames_out for r in done)
        result["single"] = {"wall_s": single, "files_per_s": clips / single, "fps": total / single,
                            "torch_threads": torch.get_num_threads()}
        start = time.perf_counter()
        ray = start_local(num_cpus=os.cpu_count())
        result["ray_start_s"] = time.perf_counter() - start
        try:
            for workers in (1, 2):
                cfg = dataclasses.replace(config, output=root / f"cluster{workers}")
                t0 = time.perf_counter()
                report = run_cluster(cfg, ClusterConfig(workers=workers, segment_seconds=0))
                wall = time.perf_counter() - t0
                t = report.totals()
                assert t["done"] == clips, report.summary_lines()
                result[f"workers_{workers}"] = {
                    "wall_s": wall, "startup_s": report.startup_s, "files_per_s": clips / wall, "fps": t["frames"] / wall,
                    "fps_after_startup": t["frames"] / max(1e-9, wall - report.startup_s),
                    "overhead_vs_single_s": wall - single, "per_worker": report.resources.get("per_worker")}
        finally:
            ray.shutdown()
        result["codec_1080p"] = codec_rates(root)
        result["engine_1080p"] = engine_flops_1080p(model)
        result["load_after"] = os.getloadavg()
        result["estimate"] = estimate(result)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    write_result(out, result, markdown(result))
    return result


def estimate(r: dict) -> dict:
    """Frames/s of an N-GPU cluster at 1080p under the stated assumptions."""
    codec = r["codec_1080p"]
    cores = os.cpu_count() or 1
    # per core: one stream needs a decode and an encode of every frame. The machine is shared: with a load
    # average above the core count this process got about cores/load of it, so scale up by load/cores.
    per_core_measured = 1 / (cores / codec["decode_fps"] + cores / codec["encode_fps"])
    share = min(1.0, cores / max(1e-9, max(r["load_before"][0], r["load_after"][0])))
    per_core_fps = per_core_measured / share
    gflops = r["engine_1080p"]["gflops_per_frame"]
    rows = []
    for tflops in ASSUMED_TFLOPS:
        engine_fps = tflops * 1e3 / gflops
        cpu_fps = ASSUMED_CORES_PER_GPU * per_core_fps
        per_gpu = min(engine_fps, cpu_fps)
        for n in (1, 8, 64):
            row = {"tflops": tflops, "gpus": n, "engine_fps_per_gpu": engine_fps, "cpu_fps_per_gpu": cpu_fps,
                   "cluster_fps": n * per_gpu, "cluster_fps_nvenc": n * min(engine_fps, ASSUMED_NVENC_FPS)}
            for gbps in ASSUMED_STORAGE_GBPS:
                cap = gbps * 1e9 / (codec["h264_bytes_per_frame"] * 2)  # read input + write output
                row[f"storage_cap_fps_{gbps:g}GBps"] = cap
            rows.append(row)
    return {"per_core_decode_encode_fps_measured": per_core_measured, "cpu_share": share,
            "per_core_decode_encode_fps": per_core_fps, "cores_per_gpu": ASSUMED_CORES_PER_GPU,
            "nvenc_fps_per_gpu": ASSUMED_NVENC_FPS, "rows": rows}


def markdown(r: dict) -> str:
    s, w1, w2 = r["single"], r["workers_1"], r["workers_2"]
    codec, est = r["codec_1080p"], r["estimate"]
    lines = [
        f"# rtstyle stylize --ray: throughput and scaling ({r['date']})", "",
        f"Machine: {r['machine']} (shared with other jobs: loaded machine; load average before "
        f"{r['load_before'][0]:.1f}, after {r['load_after'][0]:.1f}). No GPU.",
        f"Work: {r['files']} clips x {r['frames_per_file']} frames at {r['size'][0]}x{r['size'][1]}, model "
        f"`{r['model']}` on the CPU, libx264 veryfast. Private Ray cluster on 127.0.0.1 "
        f"(start: {r['ray_start_s']:.1f} s, not counted below).", "",
        "| run | wall s | start-up s | files/s | frames/s | frames/s after start-up | overhead vs plain |",
        "|---|---|---|---|---|---|---|",
        f"| plain single-machine ({s['torch_threads']} torch threads) | {s['wall_s']:.1f} | - | {s['files_per_s']:.3f} | "
        f"{s['fps']:.1f} | - | - |",
    ]
    for name, w in (("--ray, 1 worker", w1), ("--ray, 2 workers", w2)):
        lines.append(f"| {name} ({w['per_worker']}) | {w['wall_s']:.1f} | {w['startup_s']:.1f} | {w['files_per_s']:.3f} | "
                     f"{w['fps']:.1f} | {w['fps_after_startup']:.1f} | {w['overhead_vs_single_s']:+.1f} s |")
    lines += [
        "", "On two shared cores the cluster cannot beat the plain run: both use the same two cores, and each "
        "job pays for starting its workers (a Python process per worker importing torch and opening its engine). "
        "Past start-up the per-file overhead is one task round trip (milliseconds).", "",
        "## Estimate for N GPUs (1080p, H.264 in and out)", "",
        f"- Engine work: {r['engine_1080p']['gflops_per_frame']:.0f} GFLOP per 1080p frame (`{r['model']}`, "
        f"counted by `benchmarks/flops.py`), plus {r['engine_1080p']['other_gflops_per_frame']:.1f} GFLOP element-wise.",
        f"- This CPU at 1080p: decode {codec['decode_fps']:.1f} fps, encode (libx264 medium, crf 18) "
        f"{codec['encode_fps']:.1f} fps on its {os.cpu_count()} cores, i.e. {est['per_core_decode_encode_fps_measured']:.2f} "
        f"fps of decode+encode per core as measured; this process had about {est['cpu_share']:.0%} of the machine "
        f"(load average), so about {est['per_core_decode_encode_fps']:.2f} fps per unshared core (used below).",
        f"- Storage per stream: {codec['h264_bytes_per_frame'] / 1e3:.0f} kB/frame in H.264 each way "
        f"(synthetic content; real footage differs), {codec['ffv1_bytes_per_frame'] / 1e6:.2f} MB/frame for a "
        f"segment's lossless FFV1 file (long files only, written and read once more).",
        f"- Assumed: {est['cores_per_gpu']} CPU cores per GPU for decode+encode; effective engine TFLOPS of "
        f"{', '.join(f'{t:g}' for t in ASSUMED_TFLOPS)} (fp16; measured on an NVIDIA H200 with torch and CUDA graphs: "
        f"{', '.join(f'{v:g} for {k}' for k, v in MEASURED_H200_TFLOPS.items())}); shared storage of "
        f"{' or '.join(f'{g:g}' for g in ASSUMED_STORAGE_GBPS)} GB/s; enough files (or segments) to keep every "
        f"GPU busy; with `--codec h264_nvenc` and hardware decode, about {ASSUMED_NVENC_FPS:g} fps of 1080p codec "
        "work per GPU instead of the CPU.", "",
        "| eff. TFLOPS | GPUs | engine fps/GPU | CPU-codec fps/GPU | cluster fps (CPU codecs) | cluster fps (NVENC) "
        "| storage cap 1 GB/s | storage cap 10 GB/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in est["rows"]:
        lines.append(f"| {row['tflops']:g} | {row['gpus']} | {row['engine_fps_per_gpu']:.0f} | {row['cpu_fps_per_gpu']:.0f} | "
                     f"{row['cluster_fps']:.0f} | {row['cluster_fps_nvenc']:.0f} | {row['storage_cap_fps_1GBps']:.0f} | {row['storage_cap_fps_10GBps']:.0f} |")
    lines += [
        "", "Reading: throughput grows linearly with GPUs while each GPU has its own CPU cores for decode and encode; "
        "with software codecs the CPU side, not the GPU, is the limit at 1080p unless a node has many cores per GPU. "
        "The shared storage caps the whole cluster (cluster fps = min(row, storage cap)). Long files are cut into "
        "segments so one file also spreads; the join then encodes it once (one encoder's speed per file).", "",
        "Reproduce: `python -m rtstyle.benchmarks.cluster_scaling --out benchmarks/results/cluster-scaling-DATE`", "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cluster-scaling"))
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--frames", type=int, default=36)
    p.add_argument("--size", default="160x90")
    p.add_argument("--model", default="starry_night")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    result = run(args.out, args.clips, args.frames, (w, h), args.model)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
