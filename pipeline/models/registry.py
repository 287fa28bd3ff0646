"""`model.name` -> the model it builds: the one list of trainable models (their names: ModelName in config.py)."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.features.items import ItemFeatures
from pipeline.models.base import Recommender
from pipeline.models.config import ModelConfig
from pipeline.models.fdsa import FDSA
from pipeline.models.fusion import EarlyFusion, late_fusion
from pipeline.models.id_only import IDOnly
from pipeline.models.odmt import ODMT
from pipeline.models.transformer import MultiHeadAttention
from pipeline.models.unisrec import UniSRec

MODELS: dict[str, Callable[[ModelConfig, ItemFeatures], Recommender]] = {
    "odmt": ODMT,
    "sasrec": IDOnly,
    "gru4rec": IDOnly,
    "nextitnet": IDOnly,
    "fdsa": FDSA,
    "unisrec": UniSRec,
    "sasrec_lf": late_fusion,
    "sasrec_ef": EarlyFusion,
}


def build_model(config: ModelConfig, features: ItemFeatures) -> Recommender:
    """The model `config.name` names, freshly initialised (its random draws follow the global torch seed)."""
    model = MODELS[config.name](config, features)
    for layer in model.modules():
        if isinstance(layer, MultiHeadAttention):
            layer.implementation = config.attention
    return model
