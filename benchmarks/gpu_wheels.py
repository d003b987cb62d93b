"""The wheels the GPU check carries to a machine without network (the lent GPU machine's image has
a CUDA torch, numpy, pillow, OpenCV, onnx and onnxruntime, and lacks the rest), and why some are not
carried. Imports nothing heavy: it runs where the wheels are downloaded, before any install.

    python -m rtstyle.benchmarks.gpu_wheels [--python-version 3.12] [--platform TAG ...]
    benchmarks/gpu_check.sh --plan ... | grep -v '^#' | sh      # make gpu-wheels
"""

from __future__ import annotations

import argparse
import sys

# PyAV's manylinux wheel bundles FFmpeg with NVDEC (the cuvid decoders and the CUDA hwaccel, which
# load the driver's libraries at run time); abi3, so any CPython >= 3.11. About 36 MB.
WHEELS = {"av": "18.1.0"}
DEFAULT_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
NOT_CARRIED = {
    "onnxruntime-gpu": "its wheel (several hundred MB) is over what a device call can carry (64 MiB in all)",
    "tensorrt": "tensorrt-cu13-libs on the package index is a placeholder that downloads the libraries from "
                "NVIDIA at install time, so it cannot travel as a wheel to a machine without network",
}


def plan_commands(python_version: str = "3.12", platforms: tuple[str, ...] = DEFAULT_PLATFORMS,
                  dest: str = ".whl") -> list[str]:
    """Shell lines that download the wheels for ``python_version`` on ``platforms`` into ``dest``
    (comment lines say what is not carried and why)."""
    plats = " ".join(f"--platform {p}" for p in platforms)
    lines = [f"# wheels for CPython {python_version} on {', '.join(platforms)}; install there with --no-deps "
             "beside the preinstalled torch (benchmarks/gpu_check.sh does)"]
    lines += [f"python3 -m pip download --no-deps --only-binary=:all: --python-version {python_version} --implementation cp "
              f"{plats} -d {dest} {name}=={version}" for name, version in WHEELS.items()]
    lines += [f"# not carried: {name}: {why}" for name, why in NOT_CARRIED.items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rtstyle.benchmarks.gpu_wheels", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python-version", default="3.12", help="the GPU machine's CPython (default 3.12)")
    p.add_argument("--platform", action="append", help=f"wheel platform tags (default {' '.join(DEFAULT_PLATFORMS)})")
    args = p.parse_args(argv)
    print("\n".join(plan_commands(args.python_version, tuple(args.platform or DEFAULT_PLATFORMS))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
