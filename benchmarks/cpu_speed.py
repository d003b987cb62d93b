"""Whole-process speed on a CPU: ``rtstyle stylize`` (default backend) against the per-frame
reference, paired runs on the same real clip, and where one stylize run spends its time.

* The clip: ``--frames`` frames of a real video, centre-cropped to ``--size`` (default 640x272,
  a 2.35:1 film frame) and re-encoded nearly losslessly, so both sides decode the same file.
* A pair: one ``rtstyle stylize`` process and one reference process (``reference`` below: the
  classic per-frame loop of ``reference.py`` with the same decoder and encoder), in alternating
  order so drifting machine load hits both; wall time of each whole process (start-up included).
* Reported: medians, the paired ratios reference / stylize, the load average around each pair,
  the stylize run's own per-stage busy time (``--stats``), and a sampled profile (py-spy, when
  installed) of one stylize run grouped by what the time went to.

    python -m rtstyle.benchmarks.cpu_speed --source ../shared/data/videos/cup.mp4 \\
        --out benchmarks/results/cpu-openvino-2026-11-29
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from rtstyle.argparsing import ArgumentParser

from .config import ARCHS
from .environment import busy_cores, machine_line
from .report import write_result
from .timing import NOISY_BUSY_CORES

# What a sampled stack was doing, by the first rule whose text occurs in it (idle leaves first;
# py-spy names methods with their class, "Condition.wait (threading.py:331)", so match inside).
_IDLE_LEAVES = ("wait (threading.py", "_worker (concurrent/futures", "select (selectors.py", "get (queue.py")
_CATEGORIES = (
    ("engine inference (OpenVINO, waited on)", ("openvino_backend.py", "openvino/")),
    ("engine inference (torch)", ("torch_backend.py", "rtstyle/nets/")),
    ("start-up: imports", ("<frozen importlib",)),
    ("engine open (checkpoint, auto choice, compile)", ("open_engine", "open_chain")),
    ("decode", ("rtstyle/video/reader.py",)),
    ("encode and write", ("rtstyle/video/writer.py",)),
)


def make_clip(source: Path, out: Path, size: tuple[int, int], frames: int) -> Path:
    """``frames`` frames of ``source``, centre-cropped (then scaled if smaller) to ``size``."""
    import numpy as np

    from rtstyle.video import EncoderConfig, VideoReader, VideoWriter

    width, height = size
    reader = VideoReader(source)
    rate = reader.info.frame_rate or Fraction(30)
    with VideoWriter(out, width, height, Fraction(1, 1000), rate, EncoderConfig(crf=10, preset="veryfast", audio="none"),
                     overwrite=True) as writer:
        for i, frame in zip(range(frames), reader):
            image = frame.image
            h, w = image.shape[:2]
            if w < width or h < height:
                import cv2

                scale = max(width / w, height / h)
                image = cv2.resize(image, (round(w * scale + 0.5), round(h * scale + 0.5)), interpolation=cv2.INTER_AREA)
                h, w = image.shape[:2]
            top, left = (h - height) // 2, (w - width) // 2
            writer.write(np.ascontiguousarray(image[top:top + height, left:left + width]), pts=round(i * 1000 / rate))
    return out


def reference(clip: Path, out: Path, model: str) -> int:
    """The classic example's loop on a whole video: decode, stylize one frame (fp32 eager, host
    pre/post), encode -- one frame at a time, on the calling thread. Returns frames written."""
    import torch

    from rtstyle.checkpoint import load_checkpoint
    from rtstyle.models import resolve_model
    from rtstyle.video import EncoderConfig, VideoReader, VideoWriter

    from .reference import ReferenceStylizer

    stylizer = ReferenceStylizer(load_checkpoint(resolve_model(model)).model, torch.device("cpu"))
    reader = VideoReader(clip)
    info = reader.info
    count = 0
    # The same encoder settings stylize uses beside a CPU engine (preset "faster"), so the pair
    # differs only in how frames reach and leave the network.
    with VideoWriter(out, info.width, info.height, info.time_base, info.frame_rate, EncoderConfig().beside_engine("cpu"),
                     overwrite=True) as writer:
        for frame in reader:
            writer.write(stylizer(frame.image), frame.pts, frame.duration)
            count += 1
    return count


def fresh_checkpoint(arch: str, path: Path) -> Path:
    """A randomly initialised net of ``arch`` (bench's ARCHS) saved as an rtstyle checkpoint."""
    import torch

    from rtstyle.checkpoint import save_checkpoint
    from rtstyle.nets import build_model

    torch.manual_seed(0)
    config = ARCHS[arch]
    task = "sr" if arch.startswith("sr") else "style"
    return save_checkpoint(path, build_model(config), {"task": task, "name": f"fresh-{arch}"})


def _wall(command: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def paired_runs(clip: Path, model: str, pairs: int, workdir: Path) -> dict[str, Any]:
    stylize = [sys.executable, "-m", "rtstyle", "stylize", str(clip), "--model", model, "-o",
               str(workdir / "stylized.mp4"), "-y", "--no-progress", "--stats", str(workdir / "stats.json")]
    ref = [sys.executable, "-m", "rtstyle.benchmarks.cpu_speed", "reference", str(clip), str(workdir / "ref.mp4"),
           "--model", model]
    subprocess.run(stylize, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # caches: auto choice, compile
    runs = []
    for i in range(pairs):
        load = os.getloadavg()[0]
        first, second = (stylize, ref) if i % 2 == 0 else (ref, stylize)
        times = {id(first): _wall(first), id(second): _wall(second)}
        runs.append({"stylize_s": times[id(stylize)], "reference_s": times[id(ref)],
                     "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)})
    stats = json.loads((workdir / "stats.json").read_text())
    return {"runs": runs, "stylize_stats": stats, "stylize_command": " ".join(stylize[1:]),
            "reference_command": " ".join(ref[1:])}


def profile(clip: Path, model: str, workdir: Path) -> dict[str, Any] | None:
    """Sampled stacks of one stylize run (py-spy, all threads), grouped by ``_CATEGORIES``."""
    spy = shutil.which("py-spy") or (str(Path(sys.executable).parent / "py-spy")
                                     if (Path(sys.executable).parent / "py-spy").exists() else None)
    if spy is None:
        return None
    raw = workdir / "profile.txt"
    command = [spy, "record", "--format", "raw", "--rate", "100", "--threads", "--idle", "-o", str(raw), "--",
               sys.executable, "-m", "rtstyle", "stylize", str(clip), "--model", model, "-o",
               str(workdir / "profiled.mp4"), "-y", "--no-progress"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    busy: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    idle = total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        total += n
        thread = frames[0].partition(": ")[2] or "?"
        if any(k in frames[-1] for k in _IDLE_LEAVES):
            idle += n
            continue
        threads[thread] += n
        text = ";".join(frames[1:])
        if not text:  # a thread with no Python frame: the interpreter starting up or shutting down
            busy["interpreter start/exit (no Python frame)"] += n
            continue
        busy[next((name for name, keys in _CATEGORIES if any(k in text for k in keys)), "other")] += n
    active = max(1, total - idle)
    return {"samples": total, "rate_hz": 100, "idle_samples": idle,
            "busy_share": {k: round(v / active, 3) for k, v in busy.most_common()},
            "busy_share_by_thread": {k: round(v / active, 3) for k, v in threads.most_common()}}


def _quiet_line(result: dict[str, Any]) -> str:
    """Quiet or loaded, from the cores other processes kept busy just before and just after the
    runs (the load average would count the runs themselves)."""
    busy = [b for b in (result.get("busy_cores_before"), result.get("busy_cores_after")) if b is not None]
    if not busy:
        return "machine load unknown (load averages per pair below)"
    verdict = "**loaded machine** (other jobs running)" if max(busy) > NOISY_BUSY_CORES else "quiet machine"
    return f"{verdict}: cores busy with other processes before / after the runs {' / '.join(map(str, busy))}"


def summarize(result: dict[str, Any]) -> str:
    runs = result["paired"]["runs"]
    frames = result["clip"]["frames"]
    st = [r["stylize_s"] for r in runs]
    rf = [r["reference_s"] for r in runs]
    ratios = [r["reference_s"] / r["stylize_s"] for r in runs]
    stats = result["paired"]["stylize_stats"]
    lines = [
        f"# CPU whole-process speed: rtstyle stylize vs the per-frame reference ({result['date']})",
        "",
        f"- machine: {result['machine']} -- {_quiet_line(result)}",
        f"- clip: {result['clip']['width']}x{result['clip']['height']}, {frames} frames, cut from "
        f"{result['clip']['source']}; model `{result['model']}`",
        f"- stylize: `{result['paired']['stylize_command']}` (default backend and precision)",
        f"- reference: `{result['paired']['reference_command']}` (fp32 eager, one frame at a time, host pre/post,"
        " same decoder and encoder)",
        "",
        "| pair | stylize (s) | reference (s) | ratio ref/stylize | load before / after |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs):
        lines.append(f"| {i + 1} | {r['stylize_s']:.1f} | {r['reference_s']:.1f} | {r['reference_s'] / r['stylize_s']:.2f}x "
                     f"| {r['load_before']} / {r['load_after']} |")
    lines += [
        f"| **median** | **{statistics.median(st):.1f}** ({1000 * statistics.median(st) / frames:.0f} ms/frame) | "
        f"**{statistics.median(rf):.1f}** ({1000 * statistics.median(rf) / frames:.0f} ms/frame) | "
        f"**{statistics.median(ratios):.2f}x** | |",
        "",
        "## Where one stylize run's time goes",
        "",
    ]
    video = stats["videos"][0]
    startup = statistics.median(st) - video["wall_s"]
    lines += [
        f"- engine: {video['engine']}",
        f"- pipeline (first frame decoded to last frame written): {video['fps']:.2f} fps over {video['wall_s']:.1f} s; "
        "busy ms/frame " + ", ".join(f"{k} {v:.1f}" for k, v in video["ms_per_frame"].items()),
        f"- outside the pipeline (interpreter, imports, engine open, auto choice, output finalising): "
        f"~{startup:.1f} s of the median {statistics.median(st):.1f} s",
    ]
    prof = result.get("profile")
    if prof:
        lines += ["", f"Sampled profile of one run (py-spy, {prof['rate_hz']} Hz, Python threads; "
                  f"{prof['samples'] - prof['idle_samples']} busy samples, {prof['idle_samples']} idle ones left out). "
                  "OpenVINO computes on its own native threads, so its time shows as the engine thread waiting on it:",
                  "", "| what | share of busy samples |", "|---|---|"]
        lines += [f"| {k} | {100 * v:.0f}% |" for k, v in prof["busy_share"].items()]
        lines += ["", "| thread | share of busy samples |", "|---|---|"]
        lines += [f"| {k} | {100 * v:.0f}% |" for k, v in prof["busy_share_by_thread"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    ref = sub.add_parser("reference", help="run the per-frame reference on a clip (one process, for timing)")
    ref.add_argument("clip", type=Path)
    ref.add_argument("out", type=Path)
    ref.add_argument("--model", default="starry_night")
    parser.add_argument("--source", type=Path, help="real video to cut the clip from")
    parser.add_argument("--size", default="640x272")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--model", default="starry_night")
    parser.add_argument("--arch", choices=sorted(ARCHS),
                        help="time a freshly initialised net of this architecture instead of --model (style: "
                             "Johnson et al.'s size; speed does not depend on trained weights)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--out", type=Path, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    if args.command == "reference":
        reference(args.clip, args.out, args.model)
        return 0
    if args.source is None or args.out is None:
        parser.error("--source and --out are required")
    import datetime as _dt

    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="rtstyle-cpu-speed-") as tmp:
        workdir = Path(tmp)
        clip = make_clip(args.source, workdir / "clip.mp4", (width, height), args.frames)
        if args.arch:
            args.model = str(fresh_checkpoint(args.arch, workdir / f"fresh-{args.arch}.safetensors"))
        result: dict[str, Any] = {
            "busy_cores_before": busy_cores(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_line(),
            "clip": {"source": args.source.name, "width": width, "height": height, "frames": args.frames},
            "model": f"freshly initialised {args.arch} net" if args.arch else args.model,
            "paired": paired_runs(clip, args.model, args.pairs, workdir),
        }
        result["profile"] = None if args.no_profile else profile(clip, args.model, workdir)
        result["busy_cores_after"] = busy_cores()
    write_result(args.out, result, summarize(result))
    print(summarize(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
