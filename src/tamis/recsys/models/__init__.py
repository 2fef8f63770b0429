"""Recommenders, one module each, all registered in :data:`MODELS`.

See :mod:`tamis.recsys.models.base` for the shared contract (``fit``,
``score``, ``recommend``; ``query``/``item_embedding`` for neural models and
``encode`` for sequential ones).
"""

from tamis.recsys.models import bpr, gru4rec, itemknn, lightgcn, pop, sasrec, sknn
from tamis.recsys.models.base import (
    MODELS,
    NeuralRecommender,
    Recommender,
    SequentialRecommender,
    build_model,
)
from tamis.recsys.models.bpr import BPRMF
from tamis.recsys.models.gru4rec import GRU4Rec
from tamis.recsys.models.itemknn import ItemKNN
from tamis.recsys.models.lightgcn import LightGCN
from tamis.recsys.models.pop import Pop
from tamis.recsys.models.sasrec import SASRec
from tamis.recsys.models.sknn import SKNN

__all__ = [
    "MODELS",
    "Recommender",
    "NeuralRecommender",
    "SequentialRecommender",
    "build_model",
    "BPRMF",
    "GRU4Rec",
    "ItemKNN",
    "LightGCN",
    "Pop",
    "SASRec",
    "SKNN",
    "bpr",
    "gru4rec",
    "itemknn",
    "lightgcn",
    "pop",
    "sasrec",
    "sknn",
]
