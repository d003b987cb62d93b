"""Checkpoints: safetensors weights plus a JSON metadata block. Never pickle.

The metadata carries everything needed to rebuild and to trust a model:

* ``model``: the network config (``nets.config_to_dict``), so no extra flags are needed;
* ``task``: ``"style"``, ``"sr"`` (``scale`` is in the model config) or ``"texture"`` (a
  noise -> texture generator, run by ``rtstyle synth`` rather than on video);
* ``loss``: the ``LossConfig`` it was trained with; ``vgg_source``: where VGG16 came from;
* ``style_image``: ``{"name", "sha256", "size"}`` for style nets, and the image itself at the
  resolution the loss saw (uint8 HWC under the ``style_target.image`` key), so evaluation needs
  no copy of the painting;
* ``train``: iterations, batch size, image size, seed, device, data folder name, dates.

A *training* checkpoint additionally holds the optimiser state under ``optimizer.*`` keys
(tensors) and ``optimizer`` in the metadata (hyper-parameters), so ``--resume`` restores the
model, the optimiser and the step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import CheckpointError
from .fsutil import atomic_path
from .nets import ModelConfig, build_model, config_from_dict, config_to_dict

FORMAT = "rtstyle-checkpoint"
VERSION = 1
TASKS = ("style", "sr", "texture")
_OPT_PREFIX = "optimizer."
STYLE_TARGET_KEY = "style_target.image"  # uint8 (H, W, 3): the style image as the trainer's loss saw it
_NOT_WEIGHTS = (_OPT_PREFIX, "style_target.")
# A safetensors file starts with the byte length of its JSON header (u64, little-endian). Parsing
# costs about 12x that in memory (a 90 MB header took 1.1 GB), so the length is checked first.
# rtstyle's headers are a few KB (a training checkpoint ~22 KB; a StyleBank of 1000 styles
# ~1 MB), its metadata document far less.
MAX_HEADER_BYTES = 8 * 2**20
MAX_METADATA_BYTES = 2**20
_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


@dataclass
class Checkpoint:
    """A loaded model with its config and metadata."""

    model: nn.Module
    config: ModelConfig
    meta: dict[str, Any]
    path: Path | None = None
    optimizer_tensors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def name(self) -> str:
        return self.meta.get("name") or (self.path.stem if self.path else "model")


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    dtype: torch.dtype | None = None,
    style_target: np.ndarray | torch.Tensor | None = None,
    overwrite: bool = True,
) -> Path:
    """Write model (+ optimiser, + the style image the loss used) atomically. ``dtype`` (e.g. fp16)
    converts float weights; ``style_target`` is a uint8 (H, W, 3) image. Without ``overwrite`` an
    existing file is never replaced (rtstyle.outputs)."""
    from safetensors.torch import save_file

    config: ModelConfig = model.config  # type: ignore[assignment]
    task = meta.get("task")
    if task not in TASKS:
        raise ValueError(f"save_checkpoint: meta['task'] must be one of {TASKS}, got {task!r}")
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[key] = value.contiguous()
    meta = {**meta, "model": config_to_dict(config)}
    if style_target is not None:
        target = torch.as_tensor(np.asarray(style_target) if not isinstance(style_target, torch.Tensor) else style_target)
        if target.dtype != torch.uint8 or target.dim() != 3 or target.shape[-1] != 3:
            raise ValueError(f"save_checkpoint: style_target must be uint8 (H, W, 3), got {target.dtype} "
                             f"{tuple(target.shape)}")
        tensors[STYLE_TARGET_KEY] = target.detach().cpu().contiguous()
    if optimizer is not None:
        opt_tensors, opt_meta = _flatten_optimizer(optimizer)
        tensors.update(opt_tensors)
        meta["optimizer"] = opt_meta
    header = {"format": FORMAT, "version": str(VERSION), "rtstyle": json.dumps(meta, sort_keys=True)}
    with atomic_path(path, overwrite) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return Path(path)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read only the metadata block (cheap: no tensors are loaded)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    _check_header_size(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
        raise CheckpointError(f"{path} is not a safetensors checkpoint ({exc.__class__.__name__})") from None
    if header.get("format") != FORMAT or "rtstyle" not in header:
        raise CheckpointError(f"{path} is a safetensors file but not an rtstyle checkpoint")
    if header.get("version") != str(VERSION):
        raise CheckpointError(f"{path} has checkpoint version {header.get('version')}, this rtstyle reads {VERSION}")
    if len(header["rtstyle"]) > MAX_METADATA_BYTES:
        raise CheckpointError(f"{path} has {len(header['rtstyle']):,} bytes of rtstyle metadata, above the "
                              f"{MAX_METADATA_BYTES:,} an rtstyle checkpoint can need; not loaded")
    try:
        meta = json.loads(header["rtstyle"])
    except (json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path} has corrupt rtstyle metadata") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has rtstyle metadata of type {type(meta).__name__}; expected a JSON object")
    if meta.get("task") not in TASKS or not isinstance(meta.get("model"), dict):
        raise CheckpointError(f"{path} metadata lacks a valid 'task'/'model' entry")
    if not isinstance(meta.get("name", ""), str):
        raise CheckpointError(f"{path} metadata 'name' is {meta['name']!r}; expected a string")
    return meta


def _check_header_size(path: Path) -> None:
    """Refuse a header longer than ``MAX_HEADER_BYTES`` before anything parses it."""
    with path.open("rb") as f:
        prefix = f.read(8)
    # Shorter, or a length past the end of the file: not a safetensors file, which safe_open reports.
    if len(prefix) == 8:
        size = int.from_bytes(prefix, "little")
        if MAX_HEADER_BYTES < size <= path.stat().st_size - 8:
            raise CheckpointError(f"{path} declares a {size:,}-byte header, above the {MAX_HEADER_BYTES:,} an rtstyle "
                                  "checkpoint can need; not loaded")


def read_style_target(path: str | Path) -> np.ndarray | None:
    """The style image stored in a checkpoint (uint8 HWC, as the loss saw it), or None (older
    checkpoints, SR models). Reads that one tensor only."""
    from safetensors import safe_open

    read_metadata(path)  # a clear error for files that are not rtstyle checkpoints
    with safe_open(str(path), framework="pt") as f:
        if STYLE_TARGET_KEY not in f.keys():
            return None
        return f.get_tensor(STYLE_TARGET_KEY).numpy()
# Upper bounds on the network sizes a checkpoint may ask for, far above any model rtstyle trains
# (bundled: width 32-64, 4-5 residual blocks): the config is read from the file, so without them a
# tiny file could make rtstyle build a network of any size before the weights are checked.
CONFIG_LIMITS = {
    "width": 512,
    "num_residual": 64,
    "num_styles": 4096,
    "bank_layers": 16,
    "scales": 8,
    "noise_channels": 256,
    "scale": 8,
    "noise_std": 100.0,
}


def checked_config(data: dict[str, Any], path: str | Path = "checkpoint") -> ModelConfig:
    """The model config in ``data``, with each field's type checked against the config class's
    default and each size within ``CONFIG_LIMITS``; a one-line CheckpointError naming the key."""
    if not isinstance(data.get("arch"), str):
        raise CheckpointError(f"{path}: model config 'arch' is {data.get('arch')!r}; expected a string")
    config = config_from_dict(data)
    for f in fields(config):
        value, default = getattr(config, f.name), f.default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float) if isinstance(default, float) else int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise CheckpointError(f"{path}: model config {f.name!r} is {value!r}; expected a {type(default).__name__}")
        limit = CONFIG_LIMITS.get(f.name)
        if limit is not None and not (0 <= value <= limit):
            raise CheckpointError(f"{path}: model config {f.name!r} is {value!r}; allowed 0..{limit} (CONFIG_LIMITS)")
    return config


def load_checkpoint(
    path: str | Path, task: str | None = None, device: str | torch.device = "cpu"
) -> Checkpoint:
    """Rebuild the network from its stored config and load its weights strictly.

    ``task`` (one of ``TASKS``), when given, rejects a checkpoint made for another task.
    """
    from safetensors import safe_open

    path = Path(path)
    meta = read_metadata(path)
    if task is not None and meta["task"] != task:
        raise CheckpointError(f"{path} is a {meta['task']!r} checkpoint, but this command needs a {task!r} one")
    config = checked_config(meta["model"], path)
    # Shapes are compared on the meta device first (no memory, no weights read: AdaIN's pretrained
    # VGG encoder is built empty there): a config that does not describe the stored tensors is
    # refused before a real network is allocated.
    with torch.device("meta"):
        expected = build_model(config).state_dict()
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in keys if not k.startswith(_NOT_WEIGHTS)}
        missing = sorted(set(expected) - set(shapes))
        unexpected = sorted(set(shapes) - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"{path}: weights do not match its {config.arch!r} config "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        for key, shape in shapes.items():
            if shape != tuple(expected[key].shape):
                raise CheckpointError(f"{path}: {key} has shape {shape}, config needs {tuple(expected[key].shape)}")
            stored = f.get_slice(key).get_dtype()
            if expected[key].is_floating_point() and stored not in _FLOAT_DTYPES:
                # Cast to float, integer weights run and give a flat grey picture: refuse them.
                raise CheckpointError(f"{path}: {key} holds {stored} values; weights must be floating point "
                                      f"({', '.join(_FLOAT_DTYPES)})")
        weights = {k: f.get_tensor(k) for k in keys if not k.startswith(_NOT_WEIGHTS)}
        opt = {k: f.get_tensor(k) for k in keys if k.startswith(_OPT_PREFIX)}
    model = build_model(config)
    expected = model.state_dict()
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in weights.items()}, strict=True)
    model.eval().to(device)
    return Checkpoint(model, config, meta, path, opt)


def restore_optimizer(ckpt: Checkpoint, optimizer: torch.optim.Optimizer) -> None:
    """Load the optimiser state saved by ``save_checkpoint(..., optimizer=...)``."""
    opt_meta = ckpt.meta.get("optimizer")
    if opt_meta is None:
        raise CheckpointError(f"{ckpt.path} holds no optimiser state (not a training checkpoint)")
    state: dict[int, dict[str, Any]] = {}
    for key, value in ckpt.optimizer_tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, scalars in opt_meta["scalars"].items():
        state.setdefault(int(idx), {}).update(scalars)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": opt_meta["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{ckpt.path}: optimiser state does not fit this model ({exc})") from None


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in sd["state"].items():
        for name, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPT_PREFIX}{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}
