"""``rtstyle stylize --ray ...``: the flags and the summary of a cluster run (not a command itself)."""

from __future__ import annotations

import argparse
import sys
import threading

CLUSTER_FLAGS = ("workers", "skip_existing", "stall_timeout")  # meaningful only with --ray


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("many machines (Ray; pip install 'rtstyle[cluster]')")
    g.add_argument("--ray", metavar="ADDRESS",
                   help="spread the files over a Ray cluster: local (a private cluster on this machine, bound to "
                        "127.0.0.1), auto (the cluster of this environment) or HOST:PORT (a head node); inputs and "
                        "outputs must be on a filesystem every node sees")
    g.add_argument("--workers", type=int, metavar="N",
                   help="with --ray: engine workers, each fitting one node (default: one per GPU, else one per "
                        "node with its CPUs)")
    g.add_argument("--segment-seconds", type=float, default=120.0, metavar="S",
                   help="with --ray: cut files longer than 1.5 x S at keyframes into segments of about S seconds, "
                        "stylized in parallel and joined into the same frames and timestamps; temporal smoothing "
                        "restarts at each segment boundary (0 = never cut; default 120)")
    g.add_argument("--max-retries", type=int, default=2, metavar="N",
                   help="with --ray: reruns of a file or segment whose worker or node died, on the other workers "
                        "(Ray's task retries; default 2)")
    g.add_argument("--skip-existing", action="store_true",
                   help="with --ray: skip inputs whose output a finished run wrote (its run tag names the input as "
                        "it is now and the same -ss/-t); interrupted or foreign ones are redone with -y")
    g.add_argument("--stall-timeout", type=float, metavar="S",
                   help="with --ray: give up when no node can host a worker (all lost, none joined) for S seconds, "
                        "or the workers cannot be reserved within S seconds (default 120)")


def check_cluster_flags(args: argparse.Namespace) -> None:
    from ..errors import InputError

    if args.ray is None:
        given = [f"--{name.replace('_', '-')}" for name in CLUSTER_FLAGS if getattr(args, name)]
        if given:
            raise InputError(f"{', '.join(given)} only work with --ray local|auto|HOST:PORT")


def run_on_cluster(args: argparse.Namespace, config) -> int:
    """The job on the cluster; each file is listed as it finishes, then a summary and the failures
    (with -q / --progress none only failures and warnings). Exit 1 if any file failed."""
    from ..cluster import ClusterConfig, run_cluster
    from ..progress import resolve_mode
    from ..signals import interrupt_on_signals

    quiet = resolve_mode(config.progress) == "none"
    cluster = ClusterConfig(address=args.ray, workers=args.workers, max_retries=args.max_retries,
                            segment_seconds=args.segment_seconds, skip_existing=args.skip_existing,
                            **({"stall_timeout": args.stall_timeout} if args.stall_timeout is not None else {}))

    def done(f) -> None:  # as each file finishes; failures are listed with the summary
        for w in f.warnings:
            print(f"warning: {w}", file=sys.stderr)
        if f.status == "done" and not quiet:
            where = f"{f.segments} segments" if f.segments else ", ".join(sorted(set(f.workers)))
            print(f"{f.input} -> {f.output}: {f.frames} frames, {f.fps:.2f} fps ({where}; {f.retries} retries)",
                  flush=True)

    def note(text: str) -> None:
        print(f"rtstyle stylize: {text}", file=sys.stderr, flush=True)

    with interrupt_on_signals(threading.Event()) as stop:
        report = run_cluster(config, cluster, stop=stop, on_done=done, on_note=note)
    for f in report.files:
        if f.status == "skipped" and not quiet:
            print(f"{f.input} -> {f.output}: skipped (a finished run wrote it)")
    lines = report.summary_lines()
    if not quiet or report.failed:
        print(lines[0])
    for line in lines[1:]:
        print(f"rtstyle stylize: {line}", file=sys.stderr)
    return 1 if report.failed else 0
