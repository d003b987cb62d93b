"""What ``rtstyle.cpu_memory.keep_freed_memory`` buys: a torch CPU engine with and without it.

Each configuration runs in a fresh process (glibc's settings are per process), alternating
with/without so both share the machine's load; reported: ms/frame (median of the runs), user
and system CPU seconds and minor page faults per frame. Writes ``<out>.json`` and ``<out>.md``::

    python -m rtstyle.benchmarks.cpu_memory --out benchmarks/results/cpu-malloc-2026-11-24
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from rtstyle.argparsing import ArgumentParser

from .environment import machine_line
from .report import write_result

_CHILD = r"""
import json, resource, sys, time, torch
from rtstyle.engine import EngineOptions, open_engine
model, precision, batch, w, h, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
engine = open_engine(model, "torch", EngineOptions(device="cpu", precision=precision, batch_size=batch))
frames = torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8)
engine(frames)  # warm-up
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(calls):
    engine(frames)
seconds, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
n = calls * batch
print(json.dumps({"ms_per_frame": 1000 * seconds / n, "user_s_per_frame": (r1.ru_utime - r0.ru_utime) / n,
                  "sys_s_per_frame": (r1.ru_stime - r0.ru_stime) / n, "faults_per_frame": (r1.ru_minflt - r0.ru_minflt) / n}))
"""


def run_one(model: str, precision: str, batch: int, size: tuple[int, int], calls: int, tuned: bool) -> dict[str, float]:
    env = {**os.environ, "RTSTYLE_MALLOC_TUNING": "1" if tuned else "0"}
    env.pop("GLIBC_TUNABLES", None)  # measure glibc's defaults against the in-process setting
    out = subprocess.run([sys.executable, "-c", _CHILD, model, precision, str(batch), str(size[0]), str(size[1]), str(calls)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="starry_night")
    p.add_argument("--precision", nargs="+", default=["bf16", "fp32"])
    p.add_argument("--sizes", nargs="+", default=["640x480", "320x180"])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for size_text in args.sizes:
        size = tuple(int(v) for v in size_text.split("x"))
        for precision in args.precision:
            runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
            for _ in range(args.repeats):
                for tuned in (False, True):
                    runs[tuned].append(run_one(args.model, precision, args.batch, size, args.calls, tuned))
            for tuned, results in runs.items():
                rows.append({"size": size_text, "precision": precision, "batch": args.batch, "tuned": tuned,
                             **{k: statistics.median(r[k] for r in results) for k in results[0]}})
            print(rows[-2], rows[-1], flush=True)
    result = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_line(),
              "model": args.model, "calls": args.calls, "repeats": args.repeats, "rows": rows}
    lines = [f"# CPU engine with and without keep_freed_memory, {result['date']}", "",
             f"- machine: {result['machine']}; model {args.model}; {args.calls} timed calls after one warm-up, "
             f"median of {args.repeats} alternated fresh processes; GLIBC_TUNABLES unset", "",
             "| size | precision | batch | glibc defaults ms/frame | tuned ms/frame | speed-up | sys s/frame (default -> tuned) | "
             "page faults/frame (default -> tuned) |", "|---|---|---|---|---|---|---|---|"]
    for off, on in zip(rows[::2], rows[1::2]):
        lines.append(f"| {off['size']} | {off['precision']} | {off['batch']} | {off['ms_per_frame']:.0f} | {on['ms_per_frame']:.0f} | "
                     f"{off['ms_per_frame'] / on['ms_per_frame']:.2f}x | {off['sys_s_per_frame']:.3f} -> {on['sys_s_per_frame']:.3f} | "
                     f"{off['faults_per_frame']:.0f} -> {on['faults_per_frame']:.0f} |")
    write_result(args.out, result, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
