"""Trainers for rtstyle's feed-forward networks (Johnson et al. 2016 perceptual losses).

``train_style`` / ``train_sr`` / ``train_adain`` / ``train_stylebank`` / ``train_texture`` are the
library entry points behind ``rtstyle train style|sr|adain|stylebank|texture``; each takes its config
(``rtstyle/trainconfig.py``, torch-free: the CLI reads its defaults) and runs one ``Task``
(``task.py``) through the shared loop (``loop.py``). Names load on first use::

    from rtstyle.trainers import StyleTrainConfig, train_style
"""

from __future__ import annotations

import importlib

_WHERE = {
    "TrainResult": "loop", "train": "loop", "Task": "task",
    "train_style": "style", "train_sr": "sr", "train_adain": "adain", "train_stylebank": "stylebank",
    "train_texture": "texture",
}

# The configs live below the trainers (the CLI builds its parser from them without loading the trainers).
_CONFIGS = ("TrainConfig", "StyleTrainConfig", "SRTrainConfig", "AdaINTrainConfig", "StyleBankTrainConfig",
            "TextureTrainConfig", "StabilityConfig")

__all__ = sorted((*_WHERE, *_CONFIGS))


def __getattr__(name: str):
    if name in _CONFIGS:
        return getattr(importlib.import_module("rtstyle.trainconfig"), name)
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
