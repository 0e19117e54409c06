"""Which recommenders a training run fits and compares, built from settings.

``llmrec`` is the product model; ``seq_id_only`` and ``seq_text_only`` are its ablations
(the same sequence model without text, and without ID embeddings); popularity, item-kNN and
ALS are the baselines; ``llmrec_rerank`` is the product model re-ranked by the cross-encoder
(fitted once ``llmrec`` is).
"""

from __future__ import annotations

from llmrec_core.recommenders.als import SparkALS
from llmrec_core.recommenders.base import Recommender
from llmrec_core.recommenders.classic import ItemKNN, Popularity
from llmrec_core.recommenders.llm import LlmRecommender
from llmrec_core.recommenders.reranked import Reranked
from llmrec_core.settings import Settings

MODEL = "llmrec"
ABLATIONS = {"seq_id_only": {"use_text": False}, "seq_text_only": {"use_ids": False}}


def baselines(settings: Settings) -> list[Recommender]:
    ev = settings.evaluation
    return [
        Popularity(),
        ItemKNN(ev.knn_neighbours),
        SparkALS(settings.spark, ev.als_rank, ev.als_iterations, ev.als_reg, ev.als_alpha, settings.train.seed),
    ]


def sequence_models(settings: Settings, *, all_targets: bool = False, progress: bool = False,
                    ablations: bool = True) -> list[LlmRecommender]:
    cache = settings.models_dir / "text_cache"
    out = [LlmRecommender(settings.model, settings.train, name=MODEL, all_targets=all_targets, cache_dir=cache, progress=progress)]
    if ablations:
        for name, change in ABLATIONS.items():
            ms = settings.model.model_copy(update=change)
            out.append(LlmRecommender(ms, settings.train, name=name, all_targets=all_targets, cache_dir=cache, progress=progress))
    return out


def reranker(settings: Settings, base: Recommender) -> Reranked | None:
    """The cross-encoder over ``base``'s lists, unless re-ranking is off."""
    if settings.rerank.enabled == "off":
        return None
    return Reranked(base, settings.rerank, settings.text, settings.model.encoder, getattr(base, "device", "cpu"), settings.train.seed)
