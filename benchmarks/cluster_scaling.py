"""Throughput of ``rtstyle stylize --ray`` on this machine, its fixed costs, and an estimate for N GPUs.

Measured here (CPU, a private Ray cluster on 127.0.0.1, started once and reused by every job):

* the same folder of generated clips stylized by the plain single-machine run (``stylize_files``)
  and by ``--ray`` with 1 and 2 workers, in ``--rounds`` rounds, the order rotated each round:
  medians and paired ratios (each round's runs against that round's plain run);
* the fixed costs apart: starting the private cluster; joining a running one from a new process
  (what ``--ray auto`` pays instead); the first job's worker processes starting and opening their
  engines (later jobs of the same driver reuse both); a long file's segment join;
* the busy cores of other processes before and after (``environment.busy_cores``): the machine is
  shared, and the figures say how loaded it was;
* for the estimate: engine FLOPs per 1080p frame (counted, not timed), 1080p decode and encode fps
  on this CPU, and the bytes per frame a stream reads and writes.

The estimate for N GPUs (the per-GPU engine rate is derived from the FLOP count at assumed
effective TFLOPS, stated in the output with the one GPU measured so far, an H200) is
``N x min(engine fps, CPU cores per GPU x per-core decode+encode fps)``, capped by the shared
storage bandwidth divided by the bytes per frame. Writes ``<out>.json`` and ``<out>.md``::

    python -m rtstyle.benchmarks.cluster_scaling --out benchmarks/results/cluster-scaling-DATE
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import shutil
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from rtstyle.argparsing import ArgumentParser

from .environment import busy_cores, machine_info, machine_line
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
              preset: str = "veryfast", gop: int | None = None) -> Path:
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        vs.codec_context.options = {"crf": str(crf), "preset": preset,
                                    **({"x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"} if gop else {})}
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


def _job_figures(report, wall: float, clips: int) -> dict:
    t = report.totals()
    return {"wall_s": wall, "files_per_s": clips / wall, "fps": t["frames"] / wall, "done": t["done"],
            "first_start_s": t["first_start_s"], "engine_open_s": t["engine_open_s"], "join_s": t["join_s"],
            "per_worker": report.resources.get("per_worker"), "workers": report.resources.get("workers")}


def _join_running(gcs_address: str) -> float:
    """Seconds for a new process to import Ray and join the running cluster as ``--ray HOST:PORT`` /
    ``auto`` do (``cluster.join``: the token authentication of the private cluster passed through,
    its token inherited in the environment)."""
    import subprocess
    import sys

    code = ("import time; t = time.perf_counter(); from rtstyle.cluster import join; "
            f"join({gcs_address!r}); print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def run(out: Path, clips: int, frames: int, size: tuple[int, int], model: str, rounds: int = 3,
        note: str | None = None) -> dict:
    import ray

    from rtstyle.cluster import ClusterConfig, run_cluster, start_local
    from rtstyle.stylize import StylizeConfig, open_chain, stylize_files
    from rtstyle.video import EncoderConfig

    root = Path(tempfile.mkdtemp(prefix="rtstyle-cluster-bench-"))
    try:
        folder = root / "clips"
        folder.mkdir()
        for i in range(clips):
            make_clip(folder / f"clip{i:02d}.mp4", frames, size)
        # four clips' worth, a keyframe every half clip: cut into segments below
        long = make_clip(root / "long.mp4", frames * 4, size, gop=max(1, frames // 2))
        config = StylizeConfig(inputs=(folder,), model=model, output=root / "out", device="cpu", progress=False,
                               encoder=EncoderConfig(preset="veryfast"), overwrite=True)
        result: dict = {"machine": machine_line(), "cpu_flags": machine_info()["cpu_flags"], "note": note,
                        "date": _dt.date.today().isoformat(), "files": clips,
                        "frames_per_file": frames, "size": list(size), "model": model, "rounds": rounds,
                        "busy_cores_before": busy_cores(), "load_before": os.getloadavg()}
        start = time.perf_counter()
        start_local(num_cpus=os.cpu_count())
        result["fixed"] = {"cluster_start_s": time.perf_counter() - start,
                           "join_running_cluster_s": _join_running(ray.get_runtime_context().gcs_address)}
        try:
            # The first job of this driver: its worker processes start and open their engines.
            t0 = time.perf_counter()
            cold = run_cluster(dataclasses.replace(config, output=root / "cold"), ClusterConfig(workers=2, segment_seconds=0))
            result["cold_2_workers"] = _job_figures(cold, time.perf_counter() - t0, clips)
            # Steady state on both sides: the workers keep their engines between jobs, so the plain run
            # gets one engine opened once too (the per-run costs are the fixed costs measured apart).
            engine = open_chain(config)
            runs: dict[str, list[dict]] = {"plain": [], "workers_1": [], "workers_2": []}
            order = list(runs)
            for r in range(rounds):
                for name in order[r % 3:] + order[:r % 3]:  # rotated: no mode always first
                    cfg = dataclasses.replace(config, output=root / name)
                    t0 = time.perf_counter()
                    if name == "plain":
                        done = stylize_files(cfg, engine)
                        wall = time.perf_counter() - t0
                        runs[name].append({"wall_s": wall, "files_per_s": clips / wall,
                                           "fps": sum(d.frames_out for d in done) / wall, "round": r})
                    else:
                        report = run_cluster(cfg, ClusterConfig(workers=int(name[-1]), segment_seconds=0))
                        runs[name].append({**_job_figures(report, time.perf_counter() - t0, clips), "round": r})
            result["runs"] = runs
            result["torch_threads_plain"] = torch.get_num_threads()
            seconds = frames * 4 / 24
            joined = {}
            for label, seg in (("one_task", 0.0), ("segments", seconds / 4)):
                t0 = time.perf_counter()
                report = run_cluster(dataclasses.replace(config, inputs=(long,), output=root / f"long-{label}.mp4"),
                                     ClusterConfig(workers=2, segment_seconds=seg))
                (f,) = report.files
                joined[label] = {"wall_s": time.perf_counter() - t0, "segments": f.segments, "join_s": f.join_s,
                                 "busy_s": f.busy_s, "frames": f.frames}
            result["long_file"] = {"frames": frames * 4, **joined}
        finally:
            ray.shutdown()
        result["busy_cores_after"] = busy_cores()
        result["load_after"] = os.getloadavg()
        result["codec_1080p"] = codec_rates(root)
        result["engine_1080p"] = engine_flops_1080p(model)
        result["summary"] = summarise(result)
        result["estimate"] = estimate(result)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    write_result(out, result, markdown(result))
    return result


def summarise(r: dict) -> dict:
    """Medians per mode and the paired ratios (each round against its own plain run)."""
    runs = r["runs"]
    plain = {x["round"]: x["wall_s"] for x in runs["plain"]}
    out: dict = {}
    for name, items in runs.items():
        out[name] = {"wall_s": statistics.median(x["wall_s"] for x in items),
                     "fps": statistics.median(x["fps"] for x in items)}
        if name != "plain":
            out[name]["vs_plain"] = statistics.median(plain[x["round"]] / x["wall_s"] for x in items)
    one = {x["round"]: x["wall_s"] for x in runs["workers_1"]}
    out["workers_2"]["vs_1_worker"] = statistics.median(one[x["round"]] / x["wall_s"] for x in runs["workers_2"])
    return out


def estimate(r: dict) -> dict:
    """Frames/s of an N-GPU cluster at 1080p under the stated assumptions."""
    codec = r["codec_1080p"]
    cores = os.cpu_count() or 1
    # per core: one stream needs a decode and an encode of every frame. The machine is shared: beside
    # other processes keeping `busy` cores busy this process got about cores/(cores+busy) of it.
    per_core_measured = 1 / (cores / codec["decode_fps"] + cores / codec["encode_fps"])
    busy = max(r.get("busy_cores_before") or 0.0, r.get("busy_cores_after") or 0.0)
    share = cores / (cores + busy)  # fair share beside other processes keeping `busy` cores busy
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
    codec, est, fixed, sm = r["codec_1080p"], r["estimate"], r["fixed"], r["summary"]
    cold, long = r["cold_2_workers"], r["long_file"]
    busy = f"{r['busy_cores_before']} before, {r['busy_cores_after']} after"
    flags = ", ".join(r.get("cpu_flags") or []) or "none listed"
    note = f" {r['note']}" if r.get("note") else ""
    lines = [
        f"# rtstyle stylize --ray: throughput, fixed costs and scaling ({r['date']})", "",
        f"Machine: {r['machine']} (CPU flags: {flags}).{note} Shared and loaded: other processes kept {busy} of its "
        f"{os.cpu_count()} cores busy (load average {r['load_before'][0]:.1f} before, {r['load_after'][0]:.1f} after), "
        "so every figure below is a share of a busy machine; the ratios are paired (each round's runs against that "
        "round's plain run). No GPU.",
        f"Work: {r['files']} clips x {r['frames_per_file']} frames at {r['size'][0]}x{r['size'][1]}, model "
        f"`{r['model']}` on the CPU, libx264 veryfast; {r['rounds']} rounds, the order of the three runs rotated. "
        "One private Ray cluster on 127.0.0.1 for all of it (started once: its start is a fixed cost below, not in "
        "the runs). Steady state on both sides: the workers keep their processes and engines from job to job, and "
        "the plain run is given one engine opened once; what a new process pays is in the fixed costs.", "",
        "| run | median wall s | median frames/s | x plain (paired) | x 1 worker (paired) |",
        "|---|---|---|---|---|",
        f"| plain single-machine ({r['torch_threads_plain']} torch threads) | {sm['plain']['wall_s']:.1f} | "
        f"{sm['plain']['fps']:.1f} | 1 | - |",
        f"| --ray, 1 worker ({r['runs']['workers_1'][0]['per_worker']}) | {sm['workers_1']['wall_s']:.1f} | "
        f"{sm['workers_1']['fps']:.1f} | {sm['workers_1']['vs_plain']:.2f} | 1 |",
        f"| --ray, 2 workers ({r['runs']['workers_2'][0]['per_worker']} each) | {sm['workers_2']['wall_s']:.1f} | "
        f"{sm['workers_2']['fps']:.1f} | {sm['workers_2']['vs_plain']:.2f} | {sm['workers_2']['vs_1_worker']:.2f} |",
        "",
        "Fixed costs, measured apart:", "",
        "| cost | seconds | paid by |",
        "|---|---|---|",
        f"| start a private cluster (`--ray local`) | {fixed['cluster_start_s']:.1f} | every `--ray local` run |",
        f"| join a running cluster from a new process (import Ray, connect) | {fixed['join_running_cluster_s']:.1f} | "
        "`--ray auto` / `HOST:PORT` runs instead of the above |",
        f"| first item running after submission, cold (worker processes start, import torch) | "
        f"{cold['first_start_s']:.1f} | a driver's first job |",
        f"| slowest engine open in a worker, cold | {cold['engine_open_s']:.1f} | a driver's first job (later jobs "
        f"reuse the worker processes and their engines) |",
        f"| join of a {long['frames']}-frame file cut in {long['segments']['segments']} segments (decode lossless "
        f"parts, encode once) | {long['segments']['join_s']:.1f} | long files only |", "",
        f"The cold first job (2 workers) took {cold['wall_s']:.1f} s against the warm median of "
        f"{sm['workers_2']['wall_s']:.1f} s. The long file: {long['one_task']['wall_s']:.1f} s as one task, "
        f"{long['segments']['wall_s']:.1f} s in {long['segments']['segments']} segments on 2 workers plus its join.", "",
        "Reading: on two shared cores the cluster cannot beat the plain run; one machine's cores are all any "
        "number of workers has, and each job adds its task round trips and, for a new driver, worker start-up. "
        "What Ray allows to cut is cut: a running cluster is joined instead of started (`--ray auto`), a driver's "
        "worker processes and their engines serve all its jobs, a finished job rerun with `--skip-existing` starts "
        "no worker at all, and the join runs as soon as a file's last segment is done, beside other files' work. "
        "The join itself stays one encode (one encoder's speed per file): it keeps the output identical to a "
        "single-machine run.", "",
        "## Estimate for N GPUs (1080p, H.264 in and out)", "",
        f"- Engine work: {r['engine_1080p']['gflops_per_frame']:.0f} GFLOP per 1080p frame (`{r['model']}`, "
        f"counted by `benchmarks/flops.py`), plus {r['engine_1080p']['other_gflops_per_frame']:.1f} GFLOP element-wise.",
        f"- This CPU at 1080p: decode {codec['decode_fps']:.1f} fps, encode (libx264 medium, crf 18) "
        f"{codec['encode_fps']:.1f} fps on its {os.cpu_count()} cores, i.e. {est['per_core_decode_encode_fps_measured']:.2f} "
        f"fps of decode+encode per core as measured; this process had about {est['cpu_share']:.0%} of the machine "
        f"(busy cores), so about {est['per_core_decode_encode_fps']:.2f} fps per unshared core (used below).",
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
        f"Reproduce: `python -m rtstyle.benchmarks.cluster_scaling --out benchmarks/results/cluster-scaling-DATE "
        f"--clips {r['files']} --frames {r['frames_per_file']} --size {r['size'][0]}x{r['size'][1]} "
        f"--rounds {r['rounds']} --model {r['model']}`", "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cluster-scaling"))
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--frames", type=int, default=36)
    p.add_argument("--size", default="160x90")
    p.add_argument("--model", default="starry_night")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--note", help="what else ran on the machine meanwhile (written with the figures)")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    result = run(args.out, args.clips, args.frames, (w, h), args.model, args.rounds, args.note)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
