"""Bundled pretrained models, addressable by name (``--model starry_night``).

Each ``<name>.safetensors`` beside this file is an ordinary rtstyle checkpoint (fp16 weights)
whose metadata records how it was trained; ``rtstyle models`` lists them.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError

BUNDLED_DIR = Path(__file__).resolve().parent


def bundled_models() -> dict[str, Path]:
    """Name -> path of every bundled checkpoint, sorted by name."""
    return {p.stem: p for p in sorted(BUNDLED_DIR.glob("*.safetensors"))}


def resolve_model(name_or_path: str | Path) -> Path:
    """A bundled model's name, or a path to a checkpoint/ONNX/engine file, -> an existing path."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    models = bundled_models()
    if str(name_or_path) in models:
        return models[str(name_or_path)]
    if path.suffix or "/" in str(name_or_path):
        raise CheckpointError(f"model file not found: {path}")
    names = ", ".join(models) or "none bundled"
    raise CheckpointError(f"unknown model {str(name_or_path)!r}: not a file and not a bundled model ({names})")
