"""``rtstyle stylize --ray ...``: the flags and the summary of a cluster run (not a command itself)."""

from __future__ import annotations

import argparse
import sys

CLUSTER_FLAGS = ("workers", "skip_existing")  # meaningful only with --ray


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("many machines (Ray; pip install 'rtstyle[cluster]')")
    g.add_argument("--ray", metavar="ADDRESS",
                   help="spread the files over a Ray cluster: local (a private cluster on this machine, bound to "
                        "127.0.0.1), auto (the cluster of this environment) or HOST:PORT (a head node); inputs and "
                        "outputs must be on a filesystem every node sees")
    g.add_argument("--workers", type=int, metavar="N",
                   help="with --ray: engine workers (default: one per GPU, else one per node)")
    g.add_argument("--segment-seconds", type=float, default=120.0, metavar="S",
                   help="with --ray: cut files longer than 1.5 x S at keyframes into segments of about S seconds, "
                        "stylized in parallel and joined into the same frames and timestamps; temporal smoothing "
                        "restarts at each segment boundary (0 = never cut; default 120)")
    g.add_argument("--max-retries", type=int, default=2, metavar="N",
                   help="with --ray: reruns of a file or segment whose worker died (default 2)")
    g.add_argument("--skip-existing", action="store_true",
                   help="with --ray: skip inputs whose output exists and is complete (as long as the input); "
                        "incomplete ones are redone with -y")


def check_cluster_flags(args: argparse.Namespace) -> None:
    from ..errors import InputError

    if args.ray is None:
        given = [f"--{name.replace('_', '-')}" for name in CLUSTER_FLAGS if getattr(args, name)]
        if given:
            raise InputError(f"{', '.join(given)} only work with --ray local|auto|HOST:PORT")


def run_on_cluster(args: argparse.Namespace, config) -> int:
    from ..cluster import ClusterConfig, run_cluster

    cluster = ClusterConfig(address=args.ray, workers=args.workers, max_retries=args.max_retries,
                            segment_seconds=args.segment_seconds, skip_existing=args.skip_existing)
    report = run_cluster(config, cluster)
    for f in report.files:
        for w in f.warnings:
            print(f"warning: {w}", file=sys.stderr)
        if f.status == "done":
            where = f"{f.segments} segments" if f.segments else ", ".join(sorted(set(f.workers)))
            print(f"{f.input} -> {f.output}: {f.frames} frames, {f.fps:.2f} fps ({where}; {f.retries} retries)")
        elif f.status == "skipped":
            print(f"{f.input} -> {f.output}: skipped (complete output exists)")
    lines = report.summary_lines()
    print(lines[0])
    for line in lines[1:]:
        print(f"rtstyle stylize: {line}", file=sys.stderr)
    return 1 if report.failed else 0
