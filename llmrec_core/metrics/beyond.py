"""Beyond-accuracy metrics over a whole set of recommendation lists (one list per user).

These describe what is recommended rather than whether it is right: how much of the catalogue is
shown, how popular or novel it is, how varied each list is, and how evenly exposure is spread.
Popularity means the number of users who interacted with an item; items missing from a
popularity mapping count as popularity 0.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

NAN = float("nan")


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def catalogue_coverage(rec_lists: Sequence[Sequence], n_items: int) -> float:
    """Distinct items recommended across all lists, as a share of the ``n_items`` catalogue."""
    _check_positive("n_items", n_items)
    return len({item for recs in rec_lists for item in recs}) / n_items


def novelty(rec_lists: Sequence[Sequence], item_popularity: Mapping[Hashable, float], n_users: int) -> float:
    """Mean self-information -log2(pop(i) / n_users) over every recommendation made; NaN if none."""
    _check_positive("n_users", n_users)
    # A cold item (popularity 0) counts as popularity 1: it is the rarest possible item, and
    # log2(0) would make the whole mean infinite.
    bits = [
        -math.log2(max(item_popularity.get(item, 0), 1) / n_users) for recs in rec_lists for item in recs
    ]
    return float(np.mean(bits)) if bits else NAN


def intra_list_diversity(rec_lists: Sequence[Sequence], item_vectors: Mapping[Hashable, np.ndarray]) -> float:
    """Mean over lists of 2+ items of the mean pairwise cosine distance (1 - cos); NaN if none."""
    per_list = []
    for recs in rec_lists:
        if len(recs) < 2:
            continue
        x = np.stack([np.asarray(item_vectors[item], dtype=np.float64) for item in recs])
        norms = np.linalg.norm(x, axis=1)
        if (norms == 0).any():
            raise ValueError("cosine distance is undefined for a zero vector")
        unit = x / norms[:, None]
        upper = np.triu_indices(len(recs), k=1)
        per_list.append(float(np.mean(1.0 - (unit @ unit.T)[upper])))
    return float(np.mean(per_list)) if per_list else NAN


def popularity_bias(rec_lists: Sequence[Sequence], item_popularity: Mapping[Hashable, float]) -> float:
    """Average recommendation popularity (ARP): mean over lists of the mean item popularity.

    Empty lists have no mean popularity and are skipped; NaN if no list has items.
    """
    per_list = [float(np.mean([item_popularity.get(item, 0) for item in recs])) for recs in rec_lists if len(recs)]
    return float(np.mean(per_list)) if per_list else NAN


def gini_exposure(rec_lists: Sequence[Sequence], n_items: int) -> float:
    """Gini coefficient of how often each of the ``n_items`` catalogue items is recommended.

    0 is perfectly even exposure; all exposure on one item gives (n - 1) / n. NaN when nothing
    was recommended.
    """
    _check_positive("n_items", n_items)
    counts = Counter(item for recs in rec_lists for item in recs)
    if len(counts) > n_items:
        raise ValueError(f"{len(counts)} distinct items recommended from a catalogue of {n_items}")
    # Items never recommended are part of the catalogue's exposure distribution, at zero.
    x = np.zeros(n_items, dtype=np.float64)
    x[n_items - len(counts) :] = sorted(counts.values())
    total = x.sum()
    if total == 0:
        return NAN
    i = np.arange(1, n_items + 1)
    return float(np.sum((2 * i - n_items - 1) * x) / (n_items * total))
