"""Bundled pretrained models, addressable by name (``--model starry_night``).

Each ``<name>.safetensors`` beside this file is an ordinary rtstyle checkpoint (fp16 weights)
whose metadata records how it was trained; ``rtstyle models`` lists them.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from ..netconfig import StyleNetConfig, describe_style_arch
from ..outputs import OutputPolicy
from ..presets import preset_of, style_arch_name

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


def pack_model(checkpoint: str | Path, out: str | Path, name: str | None = None, dtype="float16",
               style_image: str | Path | None = None, overwrite: bool = False, recipe: str | None = None) -> Path:
    """A release copy of a training checkpoint: weights in ``dtype`` (None keeps fp32), no optimiser
    state, and the style image the loss saw (kept from the checkpoint, or read from ``style_image``,
    which must be the file the model was trained on: its sha256 is checked). Without ``overwrite``
    an existing ``out`` is refused (rtstyle.outputs). ``recipe`` (how it was trained, in words:
    commands, schedule, time) is stored as the metadata's ``recipe``."""
    import torch

    from ..checkpoint import load_checkpoint, read_style_target, save_checkpoint
    from ..errors import InputError
    from ..frames import load_image
    from ..fsutil import sha256_file

    OutputPolicy(overwrite=overwrite).check(out, [checkpoint])

    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype

    ckpt = load_checkpoint(checkpoint)
    out = Path(out)
    meta = {k: v for k, v in ckpt.meta.items() if k not in ("optimizer", "model")}
    meta["name"] = name or out.name.removesuffix(".safetensors")
    if dtype is not None:
        meta["weights_dtype"] = str(dtype).removeprefix("torch.")
    if recipe:
        meta["recipe"] = recipe
    target = read_style_target(checkpoint)
    if style_image is not None:
        record = meta.get("style_image") or {}
        if not record.get("sha256"):
            raise InputError(f"{checkpoint} records no style image; --style-image only embeds the one it was trained on")
        if sha256_file(style_image) != record["sha256"]:
            raise InputError(f"--style-image {style_image} is not the image {checkpoint} was trained on "
                             f"({record.get('name')}, sha256 {record['sha256'][:12]}...)")
        size = record.get("size")
        target = load_image(style_image, max_side=max(size) if size else None)
        if size and list(target.shape[:2]) != list(size):
            raise InputError(f"--style-image {style_image}: resized to {list(target.shape[:2])}, "
                             f"the model was trained at {size}")
    return save_checkpoint(out, ckpt.model, meta, dtype=dtype, style_target=target,
                           overwrite=overwrite)



def write_measurements(path: str | Path, measured: dict) -> Path:
    """Store ``measured`` (benchmarks/style_models.py: yardstick, fps...) as the checkpoint's
    ``measured`` metadata, in place and atomically; the weights are rewritten unchanged."""
    import torch

    from ..checkpoint import load_checkpoint, read_style_target, save_checkpoint

    ckpt = load_checkpoint(path)  # fp32 in memory: stored back in the file's own dtype (pack_model records it)
    meta = {k: v for k, v in ckpt.meta.items() if k not in ("optimizer", "model")}
    meta["measured"] = measured
    dtype = getattr(torch, meta.get("weights_dtype", "float32"))
    return save_checkpoint(path, ckpt.model, meta, dtype=dtype, style_target=read_style_target(path), overwrite=True)


def _what(meta: dict) -> tuple[str, str]:
    """(one-line summary, what it was trained from) of a checkpoint's metadata."""
    model = meta["model"]
    style = f"style image {meta.get('style_image', {}).get('name', '?')}"
    if meta["task"] == "sr":
        kind = "correction on top of bicubic" if model.get("residual") else "the paper's net"
        return (f"super-resolution x{model['scale']} ({kind}; width {model['width']}, {model['num_residual']} residual)",
                f"degradation: blur sigma {meta.get('degradation', {}).get('blur_sigma', '?')} + bicubic")
    if meta["task"] == "texture":
        return f"texture generator, noise in (`rtstyle synth`; {model['scales']} scales, width {model['width']})", style
    if model["arch"] == "adain":
        held_out = ", ".join(meta.get("held_out_styles", [])) or "none"
        return (f"AdaIN: any style image via --style-image (decoder width {model['width']})",
                f"{len(meta.get('styles', []))} training paintings (held out: {held_out})")
    if model["arch"] == "stylebank":
        names = ", ".join(s.get("name", "?") for s in meta.get("styles", []))
        return f"StyleBank: {model['num_styles']} styles via --style-index", f"style images {names}"
    return f"style, {style_arch_name(model)} net ({describe_style_arch(StyleNetConfig(**_fields(model)))})", style


def _fields(model: dict) -> dict:
    return {k: v for k, v in model.items() if k != "arch"}


def measured_line(meta: dict) -> str | None:
    """The figures benchmarks/style_models.py stored in a model (``write_measurements``), in one line."""
    m = meta.get("measured")
    if not isinstance(m, dict):
        return None
    y, fps = m.get("yardstick", {}), m.get("cpu_fps_640x360", {})
    match = y.get("lbfgs_matches_at")
    return (f"held-out: L-BFGS matches it at {match if match is not None else 'more than 300'} iterations "
            f"({y.get('photos')} photos, {y.get('size')} px; Johnson et al.: 50-100); 640x360 on a CPU: "
            f"{fps.get('b1')} fps at batch 1, {fps.get('b4')} at batch 4 ({fps.get('backend')}, {fps.get('cpu')}); "
            f"measured {m.get('date')}")


def describe_bundled() -> list[dict]:
    """One row per bundled model: name, a one-line summary, a provenance line, full metadata."""
    from ..checkpoint import read_metadata

    rows = []
    for name, path in bundled_models().items():
        meta = read_metadata(path)
        train, loss = meta.get("train", {}), meta.get("loss", {})
        summary, source = _what(meta)
        # SR's feature loss names its VGG layers (the paper's relu2_2, or deeper ones too).
        layers = "+".join(loss.get("content_layers", ())) if meta.get("task") == "sr" else ""
        weights = ", ".join(f"{k.removesuffix('_weight')} {v:g}" + (f" at {layers}" if k == "content_weight" and layers else "")
                            for k, v in loss.items() if k.endswith("_weight") and k != "style_layer_weights" and v)
        if meta.get("colour_weight"):  # SR's low-resolution consistency term (trainers/sr.py)
            weights += f", low-res colour {meta['colour_weight']:g}"
        stability = meta.get("stability", {})
        if stability.get("weight"):
            moves = any(stability.get(k) for k in ("rotate", "zoom", "flow", "occlusion"))
            weights += f", stabilisation {stability['weight']:g} ({'synthetic motion' if moves else 'shift only'})"
        data = train.get("data")
        content = f"on {data.get('images', '?')} photos" if data else "on noise (no photos)"
        provenance = (f"{source}; {train.get('iterations', '?')} it x batch {train.get('batch_size', '?')} at "
                      f"{train.get('image_size', '?')} px {content}; loss {weights}; trained on "
                      f"{train.get('device', '?')}, {train.get('date', '?')[:10]}")
        if train.get("seconds"):
            provenance += f" ({train['seconds'] / 60:.0f} min)"
        schedule = train.get("lr_schedule") or []
        if len(schedule) > 1:  # resumed with a lower rate: a step decay (trainers/loop.py)
            provenance += "; lr " + ", ".join(f"{lr:g}" + (f" from {step}" if step else "") for step, lr in schedule)
        preset = preset_of(meta)
        if preset is not None:  # which `rtstyle train style --preset` reproduces this recipe
            provenance += f"; recipe: --preset {preset}"
        elif meta.get("task") == "style" and meta.get("model", {}).get("arch") == "style":
            provenance += "; recipe: custom (no preset)"
        rows.append({"name": name, "path": str(path), "summary": summary, "provenance": provenance, "preset": preset,
                     "measured": measured_line(meta),
                     "size_mb": round(path.stat().st_size / 1e6, 2), "meta": meta})
    return rows
