"""Trainers for rtstyle's feed-forward networks (Johnson et al. 2016 perceptual losses).

``train_style`` / ``train_sr`` / ``train_adain`` / ``train_stylebank`` / ``train_texture`` are the
library entry points behind ``rtstyle train style|sr|adain|stylebank|texture``.
"""

from .adain import AdaINTrainConfig, train_adain
from .common import TrainConfig, TrainResult
from .sr import SRTrainConfig, train_sr
from .style import StyleTrainConfig, train_style
from .stylebank import StyleBankTrainConfig, train_stylebank
from .texture import TextureTrainConfig, train_texture

__all__ = ["AdaINTrainConfig", "SRTrainConfig", "StyleBankTrainConfig", "StyleTrainConfig", "TextureTrainConfig",
           "TrainConfig", "TrainResult", "train_adain", "train_sr", "train_style", "train_stylebank", "train_texture"]
