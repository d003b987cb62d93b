"""Trainers for rtstyle's feed-forward networks (Johnson et al. 2016 perceptual losses).

``train_style`` / ``train_sr`` are the library entry points behind ``rtstyle train style|sr``.
"""

from .common import TrainConfig, TrainResult
from .sr import SRTrainConfig, train_sr
from .style import StyleTrainConfig, train_style

__all__ = ["SRTrainConfig", "StyleTrainConfig", "TrainConfig", "TrainResult", "train_sr", "train_style"]
