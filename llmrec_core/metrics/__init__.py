"""Offline evaluation metrics: ranking (top-k), CTR (AUC, log loss) and beyond-accuracy.

Pure functions of in-memory lists and arrays; no I/O, no Spark.
"""

from __future__ import annotations

from llmrec_core.metrics.beyond import (
    catalogue_coverage,
    gini_exposure,
    intra_list_diversity,
    novelty,
    popularity_bias,
)
from llmrec_core.metrics.ctr import auc, ece, log_loss, reliability, user_auc
from llmrec_core.metrics.intervals import paired_bootstrap
from llmrec_core.metrics.ranking import (
    f1,
    hit_rate,
    mrr,
    ndcg,
    ndcg_of_ranks,
    precision,
    ranks_to_metrics,
    recall,
)

__all__ = [
    "auc",
    "catalogue_coverage",
    "ece",
    "f1",
    "gini_exposure",
    "hit_rate",
    "intra_list_diversity",
    "log_loss",
    "mrr",
    "ndcg",
    "novelty",
    "paired_bootstrap",
    "popularity_bias",
    "precision",
    "ndcg_of_ranks",
    "ranks_to_metrics",
    "recall",
    "reliability",
    "user_auc",
]
