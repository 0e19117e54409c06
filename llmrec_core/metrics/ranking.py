"""Top-k ranking metrics for one user's recommendation list, plus a vectorised leave-one-out helper.

Per-user functions share the signature ``(recs, truth, k) -> float``: ``recs`` is a ranked list of
item ids (best first; only the first ``k`` count), ``truth`` the set of relevant ids. Relevance is
binary. A user with no relevant items has no defined score, so every function returns NaN for an
empty ``truth`` and the caller decides whether to skip or count such users (``np.nanmean`` skips).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np

NAN = float("nan")


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _hit_ranks(recs: Sequence, truth: Collection, k: int) -> list[int]:
    """1-based ranks within the top k at which a relevant item appears."""
    _check_k(k)
    relevant = set(truth)
    seen: set = set()
    ranks = []
    for rank, item in enumerate(list(recs)[:k], start=1):
        # A repeated item is one recommendation shown twice, not two hits; counting it again
        # could push precision or recall above 1.
        if item in relevant and item not in seen:
            ranks.append(rank)
        seen.add(item)
    return ranks


def hit_rate(recs: Sequence, truth: Collection, k: int) -> float:
    """1.0 if any of the top ``k`` is relevant, else 0.0."""
    if not truth:
        return NAN
    return 1.0 if _hit_ranks(recs, truth, k) else 0.0


def precision(recs: Sequence, truth: Collection, k: int) -> float:
    """Relevant share of the top ``k``; the denominator is ``k`` even when fewer were recommended."""
    if not truth:
        return NAN
    # Dividing by k, not len(recs), so a short list is not rewarded for recommending less.
    return len(_hit_ranks(recs, truth, k)) / k


def recall(recs: Sequence, truth: Collection, k: int) -> float:
    """Share of the relevant items found in the top ``k``."""
    if not truth:
        return NAN
    return len(_hit_ranks(recs, truth, k)) / len(set(truth))


def f1(recs: Sequence, truth: Collection, k: int) -> float:
    """Harmonic mean of :func:`precision` and :func:`recall` at ``k`` (0 without a hit)."""
    p, r = precision(recs, truth, k), recall(recs, truth, k)
    if p != p or r != r:  # NaN: nothing relevant
        return NAN
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def ndcg(recs: Sequence, truth: Collection, k: int) -> float:
    """Binary-relevance NDCG@k: DCG = sum of 1/log2(rank+1) over hits, over the ideal DCG."""
    if not truth:
        return NAN
    dcg = sum(1.0 / math.log2(rank + 1) for rank in _hit_ranks(recs, truth, k))
    # The ideal list can place at most k relevant items, so a user with more than k relevant
    # items can still reach 1.0.
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(set(truth)), k) + 1))
    return dcg / ideal


def mrr(recs: Sequence, truth: Collection, k: int) -> float:
    """Reciprocal rank of the first relevant item in the top ``k``, 0.0 if there is none."""
    if not truth:
        return NAN
    ranks = _hit_ranks(recs, truth, k)
    return 1.0 / ranks[0] if ranks else 0.0


def ndcg_of_ranks(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k from the 1-based rank of each user's single held-out item (ideal DCG 1)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    # np.where evaluates both branches; the ranks are >= 1, so neither divides by zero.
    return np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)


def ranks_to_metrics(ranks: np.ndarray, k: int) -> dict[str, float]:
    """Mean HR@k, NDCG@k and MRR@k from the 1-based rank of each user's single held-out item.

    With exactly one relevant item per user the per-user formulas collapse to functions of its
    rank (the ideal DCG is 1), so a whole evaluation is a few array operations.
    """
    _check_k(k)
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        return {"hr": NAN, "ndcg": NAN, "mrr": NAN}
    if ranks.min() < 1:
        raise ValueError("ranks are 1-based; got a rank below 1")
    ranks = ranks.astype(np.float64)
    hit = ranks <= k
    return {
        "hr": float(hit.mean()),
        "ndcg": float(ndcg_of_ranks(ranks, k).mean()),
        "mrr": float(np.where(hit, 1.0 / ranks, 0.0).mean()),
    }
