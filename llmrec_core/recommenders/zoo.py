"""Which recommenders a training run fits and compares, built from settings.

``llmrec`` is the product model; ``seq_id_only`` and ``seq_text_only`` are its ablations (the
same sequence model without text, and without ID embeddings); popularity, item-kNN, EASE, ALS
and the content baseline (the users' taste in the frozen text vectors) are the baselines;
``llmrec_rerank`` is the product model re-ranked by the cross-encoder (fitted once ``llmrec`` is).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import torch

from llmrec_core.recommenders.als import SparkALS
from llmrec_core.recommenders.base import Recommender
from llmrec_core.recommenders.classic import EASE, ItemKNN, Popularity
from llmrec_core.recommenders.content import ContentTaste
from llmrec_core.recommenders.llm import LlmRecommender
from llmrec_core.recommenders.reranked import Reranked
from llmrec_core.settings import Settings

MODEL = "llmrec"
ABLATIONS = {"seq_id_only": {"use_text": False}, "seq_text_only": {"use_ids": False}}


def baselines(settings: Settings, n_items: int | None = None) -> list[Recommender]:
    """Every baseline with its configured (untuned) hyper-parameters."""
    return [make(**grid[0]) for make, grid in baseline_grids(settings, n_items).values()]


def baseline_grids(settings: Settings, n_items: int | None = None) -> dict[str, tuple[Callable[..., Recommender], list[dict]]]:
    """Each baseline's constructor and the hyper-parameters to try on validation (the configured
    values first). EASE is left out above ``evaluation.ease_max_items`` items."""
    ev = settings.evaluation

    def grid(**axes: list) -> list[dict]:
        names = list(axes)
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]

    def als(rank, reg, alpha):
        return SparkALS(settings.spark, rank, ev.als_iterations, reg, alpha, settings.train.seed)

    def content(half_life, negative_weight):
        ms, ts = settings.model, settings.train
        return ContentTaste(ms.encoder, ms.max_text_tokens, ts.text_batch_size, ts.seed, text_cache_dir(settings), half_life,
                            ts.device, negative_weight)

    tune = ev.tune_baselines
    out = {
        "popularity": (Popularity, grid(days=_first(ev.popularity_days, ev.popularity_days_grid, tune))),
        "item_knn": (ItemKNN, grid(neighbours=_first(ev.knn_neighbours, ev.knn_neighbours_grid, tune),
                                   shrink=_first(0.0, ev.knn_shrink_grid, tune))),
        "ease": (EASE, grid(l2=_first(ev.ease_l2, ev.ease_l2_grid, tune))),
        "als": (als, grid(rank=_first(ev.als_rank, ev.als_rank_grid, tune), reg=_first(ev.als_reg, ev.als_reg_grid, tune),
                          alpha=_first(ev.als_alpha, ev.als_alpha_grid, tune))),
        "content": (content, grid(half_life=_first(ev.content_half_life, ev.content_half_life_grid, tune),
                                  negative_weight=_first(ev.content_negative_weight, ev.content_negative_weight_grid, tune))),
    }
    if n_items is not None and n_items > ev.ease_max_items:
        del out["ease"]
    return out


def _first(value, values: list, tune: bool) -> list:
    """``value`` then the other grid values (only ``value`` when not tuning)."""
    return [value, *(v for v in values if v != value)] if tune else [value]


def text_cache_dir(settings: Settings) -> Path:
    """Where frozen text vectors are kept between fits (by encoder, length and texts)."""
    return settings.models_dir / "text_cache"


def sequence_models(settings: Settings, *, all_targets: bool = False, progress: bool = False,
                    ablations: bool = True) -> list[LlmRecommender]:
    cache = text_cache_dir(settings)
    out = [LlmRecommender(settings.model, settings.train, name=MODEL, all_targets=all_targets, cache_dir=cache, progress=progress)]
    if ablations:
        for name, change in ABLATIONS.items():
            ms = settings.model.model_copy(update=change)
            out.append(LlmRecommender(ms, settings.train, name=name, all_targets=all_targets, cache_dir=cache, progress=progress))
    return out


def reranker(settings: Settings, base: Recommender) -> Reranked | None:
    """The cross-encoder over ``base``'s lists: with ``rerank.enabled`` on, or auto on a GPU. On a
    CPU, auto trains none: capped to what a CPU can fit it has not paid (docs/evaluation.md), and
    scoring and the refresh would not use it there anyway (``scoring.rerank``: auto = on a GPU)."""
    device = getattr(base, "device", "cpu")
    if settings.rerank.enabled == "off" or (settings.rerank.enabled == "auto" and torch.device(device).type != "cuda"):
        return None
    return Reranked(base, settings.rerank, settings.text, settings.model.encoder, device, settings.train.seed)
