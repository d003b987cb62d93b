"""End-to-end latency and fps of ``rtstyle serve``'s live mode, measured like a browser sees it.

A studio runs in its own process (``rtstyle serve --port 0``); this process is the client: it
sends synthetic frames over WebRTC at ``--send-fps``, each stamped with a frame number
(``rtstyle.serve.probe``), and times every stylized frame from send to return. Reported per frame
size: median and 95th-percentile end-to-end latency, frames per second returned, frames the server
dropped (newest-frame policy), the server's own arrival-to-encoder time, and the engine alone for
reference. Writes ``<out>.json`` and ``<out>.md``::

    python -m rtstyle.benchmarks.serve_latency --out benchmarks/results/serve-latency-2026-11-29
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rtstyle.argparsing import ArgumentParser

from .environment import machine_line
from .report import write_result


def engine_ms(model: str, size: tuple[int, int], calls: int = 5) -> float:
    """Median ms per frame of the engine alone (batch 1), for reference."""
    import torch

    from rtstyle.engine import EngineOptions, open_engine

    engine = open_engine(model, "auto", EngineOptions(batch_size=1))
    frames = torch.randint(0, 256, (1, size[1], size[0], 3), dtype=torch.uint8)
    engine(frames)
    engine(frames)  # CPU kernels pick their algorithms on the first calls of a shape
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        engine(frames)
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def start_server(model: str, max_side: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "rtstyle", "serve", "--port", "0", "--model", model,
                             "--max-side", str(max_side)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not match:
        stop_server(proc)
        raise RuntimeError(f"rtstyle serve did not start: {line!r}")
    return proc, match.group(0)


def stop_server(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(url: str, size: tuple[int, int], seconds: float, send_fps: float, warmup_s: float) -> dict[str, Any]:
    from rtstyle.serve.probe import probe

    result = asyncio.run(probe(url, seconds=seconds, size=size, fps=send_fps, warmup_s=warmup_s))
    server = result.server
    return {"size": f"{size[0]}x{size[1]}", **result.summary(), "unstamped": result.unstamped,
            "server_frames_in": server.get("frames_in"), "server_dropped": server.get("dropped"),
            "server_ms_mean": server.get("server_ms_mean"), "server_ms_p95": server.get("server_ms_p95"),
            "engine": server.get("engine")}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# rtstyle serve: live end-to-end latency ({result['date']})", "",
             (f"Machine: {result['machine']} (load before {result['load_before']}, after {result['load_after']}; "
             "a shared, loaded machine: other jobs ran at the same time)."), "",
             (f"Model `{result['model']}`, engine {result['rows'][0]['engine']}; client and server are two processes on "
             f"this machine over loopback WebRTC (VP8 both ways); frames sent at {result['send_fps']:g} fps for "
             f"{result['seconds']:g} s after {result['warmup_s']:g} s of warm-up, batch 1, newest-frame policy."), "",
             ("| frame | latency median (ms) | latency p95 (ms) | fps returned | sent | reached the server | returned "
             "| server arrival->encoder mean (ms) | server p95 (ms) |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['size']} | {r['latency_ms_median']:.0f} | {r['latency_ms_p95']:.0f} | {r['fps']:.1f} | "
                     f"{r['frames_sent']} | {r['server_frames_in']} | {r['frames_received']} | {r['server_ms_mean']} | "
                     f"{r['server_ms_p95']} |")
    lines += ["", ("Sent and reached-the-server count the whole run (connection and warm-up included); returned, fps "
              "and latency the measured window."), "", ("Latency: a frame is stamped when the client hands it to WebRTC and timed when its stylized "
              "version is decoded back (VP8 encode, loopback network, jitter buffer, decode, engine, encode, decode). "
              "The server's own arrival->encoder time (engine included) is measured in the server; the rest is the "
              "WebRTC transport, the codecs and the client. `engine_ms` in the JSON (the engine alone, timed in "
              "the client process before the server starts) swings by several times under this load."), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="starry_night")
    p.add_argument("--sizes", nargs="+", default=["320x240", "640x480"])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--send-fps", type=float, default=30.0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    load_before = os.getloadavg()
    rows = []
    for size in sizes:
        reference = engine_ms(args.model, size)  # before the server starts: the two never compete
        proc, url = start_server(args.model, max(size))
        try:
            row = measure(url, size, args.seconds, args.send_fps, args.warmup)
        finally:
            stop_server(proc)
        row["engine_ms"] = reference
        rows.append(row)
        print(row, file=sys.stderr)
    result = {"date": _dt.date.today().isoformat(), "machine": machine_line(), "model": args.model,
              "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in os.getloadavg()],
              "seconds": args.seconds, "warmup_s": args.warmup, "send_fps": args.send_fps, "rows": rows}
    json_path, md_path = write_result(args.out, result, markdown(result))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
