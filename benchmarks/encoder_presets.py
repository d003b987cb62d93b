"""What each libx264 preset costs beside a CPU engine: encode time per frame on the encoder's one
thread (rtstyle.threads' plan), file size and fidelity (PSNR-Y of the decoded file against the
frames it was given), on real stylized frames.

On a CPU the encoder and the engine share the same cores, so every millisecond the encoder
spends is a millisecond the engine does not get: the pipeline runs at about
``1 / (engine + encode + decode)`` CPU-seconds per frame, not at its slowest stage's speed. This
script is the measurement behind ``rtstyle.video.writer.CPU_PRESET`` (the preset ``stylize`` uses
when its engine runs on the CPU).

    python -m rtstyle.benchmarks.encoder_presets --source ../shared/data/videos/cup.mp4 \\
        --out benchmarks/results/cpu-encoder-presets-2026-11-29
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from rtstyle.argparsing import ArgumentParser

from .cpu_speed import make_clip
from .environment import machine_line
from .report import write_result

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


def stylized_frames(clip: Path, model: str) -> list[np.ndarray]:
    """The clip's frames through ``model`` (a short clip: held in memory on purpose, so the
    encoder is timed alone)."""
    from rtstyle.api import Stylizer
    from rtstyle.video import VideoReader

    return list(Stylizer(model, device="cpu").frames(f.image for f in VideoReader(clip)))


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of the BT.601 luma of two uint8 RGB frames."""
    weights = np.array([0.299, 0.587, 0.114], np.float64)
    ya, yb = a.astype(np.float64) @ weights, b.astype(np.float64) @ weights
    mse = float(np.mean((ya - yb) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def encode(frames: list[np.ndarray], path: Path, preset: str, crf: float) -> float:
    """Encode ``frames`` with one x264 thread; returns seconds spent in the encoder."""
    from rtstyle.video import EncoderConfig, VideoWriter

    h, w = frames[0].shape[:2]
    config = EncoderConfig(crf=crf, preset=preset, audio="none", options={"threads": "1"})
    start = time.perf_counter()
    with VideoWriter(path, w, h, Fraction(1, 30), Fraction(30), config, overwrite=True) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame, pts=i)
    return time.perf_counter() - start


def fidelity(frames: list[np.ndarray], path: Path) -> float:
    from rtstyle.video import VideoReader

    decoded = [f.image for f in VideoReader(path)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"{path}: {len(decoded)} frames decoded, {len(frames)} written")
    return statistics.mean(psnr_y(a, b) for a, b in zip(frames, decoded))


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="real video to cut the clip from")
    parser.add_argument("--size", default="640x272")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--model", default="starry_night")
    parser.add_argument("--crf", type=float, default=18.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    machine = machine_line()
    with tempfile.TemporaryDirectory(prefix="rtstyle-presets-") as tmp:
        clip = make_clip(args.source, Path(tmp) / "clip.mp4", (width, height), args.frames)
        frames = stylized_frames(clip, args.model)
        rows = []
        times: dict[str, list[float]] = {p: [] for p in PRESETS}
        for _ in range(args.repeats):  # presets interleaved, so drifting load hits each alike
            for preset in PRESETS:
                times[preset].append(encode(frames, Path(tmp) / f"{preset}.mp4", preset, args.crf))
        for preset in PRESETS:
            out = Path(tmp) / f"{preset}.mp4"
            rows.append({"preset": preset, "ms_per_frame": 1000 * statistics.median(times[preset]) / len(frames),
                         "runs_s": times[preset], "bytes": out.stat().st_size, "psnr_y": fidelity(frames, out)})
            print(f"{preset:10s} {rows[-1]['ms_per_frame']:6.1f} ms/frame {rows[-1]['bytes']:9d} B "
                  f"PSNR-Y {rows[-1]['psnr_y']:.2f} dB", file=sys.stderr, flush=True)
    medium = next(r for r in rows if r["preset"] == "medium")
    lines = [f"# libx264 presets beside a CPU engine ({time.strftime('%Y-%m-%d')})", "",
             f"- machine: {machine}",
             f"- frames: {args.frames} frames of {args.source.name} cropped to {args.size}, stylized by `{args.model}`; "
             f"crf {args.crf:g}, one encoder thread (rtstyle.threads), median of {args.repeats} interleaved runs",
             "- PSNR-Y: the decoded file against the frames the encoder was given", "",
             "| preset | encode ms/frame | x medium's time | size (kB) | x medium's size | PSNR-Y (dB) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['ms_per_frame']:.1f} | {r['ms_per_frame'] / medium['ms_per_frame']:.2f} | "
                     f"{r['bytes'] / 1000:.0f} | {r['bytes'] / medium['bytes']:.2f} | {r['psnr_y']:.2f} |")
    result = {"machine": machine, "source": str(args.source), "size": args.size, "frames": args.frames,
              "model": args.model, "crf": args.crf, "rows": rows}
    write_result(args.out, result, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
