"""``rtstyle bench``: fps per stage and end to end, the roofline floor, and the reference."""

from __future__ import annotations

import argparse

from ..choices import BENCH_ARCHS, BENCH_QUICK_DURATION
from ..errors import InputError
from .output_flags import add_overwrite_flags, output_policy
from .progress_args import add_progress_arguments, progress_mode


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,4,8, got {text!r}") from None
    return values


def _resolutions(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for item in text.split(","):
        w, sep, h = item.lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit():
            raise argparse.ArgumentTypeError(f"expected sizes such as 640x360,1920x1080, got {item!r}")
        out.append((int(w), int(h)))
    return tuple(out)


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure fps: model only, per pipeline stage, end to end, against the roofline and a reference",
        description="Benchmark every available backend x precision x batch x resolution, the roofline floor "
        "(FLOPs counted from the model, ceilings measured here), the classic per-frame reference, and the "
        "decode/engine/encode pipeline. GPU defaults: 640x360,1280x720,1920x1080 x batch 1,4,8; CPU defaults "
        "to a reduced grid.",
    )
    p.add_argument("--model", help="bundled model name or rtstyle checkpoint (default: a fresh net of --arch)")
    # Checked by BenchConfig (benchmarks.config.ARCHS), which the parser does not import: it pulls in torch.
    p.add_argument("--arch", help=f"architecture of the fresh net: {', '.join(BENCH_ARCHS)} (default style; --quick: style-fast)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--backends", type=_names, help="comma-separated backends (default: every available one)")
    p.add_argument("--precisions", type=_names, help="comma-separated fp32,fp16,bf16 (default: per backend and device)")
    p.add_argument("--batch-sizes", type=_ints, help="comma-separated batch sizes, e.g. 1,4,8")
    p.add_argument("--resolutions", type=_resolutions, help="comma-separated WxH, e.g. 640x360,1920x1080 (SR: output size)")
    p.add_argument("--warmup", type=int, help="untimed calls per configuration")
    p.add_argument("--repeats", type=int, help="timed calls per configuration")
    p.add_argument("--clip", help="video for the pipeline stages (default: a generated clip)")
    p.add_argument("--no-reference", action="store_true", help="skip the reference implementation")
    p.add_argument("--no-pipeline", action="store_true", help="skip the decode/engine/encode pipeline")
    p.add_argument("--quick", action="store_true", help=f"small grid, few repetitions: {BENCH_QUICK_DURATION}")
    p.add_argument("--json", metavar="PATH", help="write every figure to PATH, with PATH.md and PNG plots beside it")
    add_progress_arguments(p)
    add_overwrite_flags(p, "existing --json, .md and .png files")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rtstyle.benchmarks.bench import run_bench
    from rtstyle.benchmarks.config import BenchConfig
    from rtstyle.benchmarks.report import markdown_report, output_paths, write_outputs

    if args.json is not None and not args.json.endswith(".json"):
        raise InputError(f"--json {args.json}: give a file name ending in .json (the .md and .png go beside it)")
    if args.json is not None:  # before a long run, not after it
        for path in output_paths(args.json, pipeline=not args.no_pipeline):
            output_policy(args).check(path)
    config = BenchConfig(
        model=args.model, arch=args.arch, device=args.device, backends=args.backends, precisions=args.precisions,
        batch_sizes=args.batch_sizes, resolutions=args.resolutions, warmup=args.warmup, repeats=args.repeats,
        clip=args.clip, reference=not args.no_reference, pipeline=not args.no_pipeline, quick=args.quick,
        progress=progress_mode(args),
    )
    result = run_bench(config)
    if args.json is None:
        print(markdown_report(result))
        return 0
    written = write_outputs(result, args.json, args.overwrite)
    print(written["markdown"].read_text())
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0
