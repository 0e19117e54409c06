"""Baselines without a language model: most popular, and item-kNN (cosine, top-k neighbours)."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.recommenders.base import History, Recommender, popularity_counts


class Popularity(Recommender):
    """Items ranked by their number of training interactions (the same list for everyone)."""

    name = "popularity"

    def fit(self, snapshot: Snapshot, train: Interactions) -> Popularity:
        counts = popularity_counts(train, snapshot.n_items)
        # Items nobody touched cannot be ranked by popularity.
        self.scores_ = np.where(counts > 0, np.log1p(counts), -np.inf).astype(np.float32)
        return self

    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.scores_, (len(users), len(self.scores_))).copy()


class ItemKNN(Recommender):
    """Sum of cosine similarities to the items of the user's history, top-k neighbours kept."""

    name = "item_knn"

    def __init__(self, neighbours: int = 100):
        self.neighbours = neighbours

    def params(self) -> dict[str, object]:
        return {"neighbours": self.neighbours}

    def fit(self, snapshot: Snapshot, train: Interactions) -> ItemKNN:
        n_users, n_items = snapshot.n_users, snapshot.n_items
        m = sparse.csr_matrix((np.ones(len(train), np.float32), (train.user, train.item)), shape=(n_users, n_items))
        m.data[:] = 1.0  # repeated interactions count once
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=0))).ravel()
        norms[norms == 0] = 1.0
        sim = (m.T @ m).toarray().astype(np.float32) / norms[:, None] / norms[None, :]
        np.fill_diagonal(sim, 0.0)
        if self.neighbours < n_items:
            # Exactly k neighbours per item, ties at the cut included or not by position.
            drop = np.argpartition(-sim, self.neighbours - 1, axis=1)[:, self.neighbours:]
            np.put_along_axis(sim, drop, 0.0, axis=1)
        self.sim_ = sim
        self.known_ = np.bincount(train.item, minlength=n_items) > 0
        return self

    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), self.sim_.shape[0]), np.float32)
        for row, u in enumerate(users):
            items = np.unique(history.items(u))
            if len(items):
                out[row] = self.sim_[items].sum(axis=0)
        out[:, ~self.known_] = -np.inf
        return out
