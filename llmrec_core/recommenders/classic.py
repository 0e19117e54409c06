"""Baselines without a language model: most popular, and item-kNN (cosine, top-k neighbours)."""

from __future__ import annotations

import numpy as np
import torch
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
        self.item_ids_ = np.asarray(snapshot.item_ids, dtype=object)
        return self

    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.scores_, (len(users), len(self.scores_))).copy()

    def export(self) -> dict:
        return {"kind": self.name, "name": self.name, "item_ids": list(self.item_ids_), "scores": torch.from_numpy(self.scores_)}

    @classmethod
    def restore(cls, state: dict, snap: Snapshot, device: str = "cpu") -> Popularity:
        rec = cls()
        rows = by_id(state["item_ids"], snap.item_ids)
        rec.item_ids_ = np.asarray(snap.item_ids, dtype=object)
        rec.scores_ = np.where(rows >= 0, state["scores"].numpy()[np.maximum(rows, 0)], -np.inf).astype(np.float32)
        return rec


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
        self.item_ids_ = np.asarray(snapshot.item_ids, dtype=object)
        return self

    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), self.sim_.shape[0]), np.float32)
        for row, u in enumerate(users):
            items = np.unique(history.items(u))
            if len(items):
                out[row] = self.sim_[items].sum(axis=0)
        out[:, ~self.known_] = -np.inf
        return out

    def item_vectors(self) -> np.ndarray:
        """Each item's row of neighbour similarities: items with the same neighbours are alike."""
        return self.sim_

    def export(self) -> dict:
        return {"kind": self.name, "name": self.name, "neighbours": self.neighbours, "item_ids": list(self.item_ids_),
                "sim": torch.from_numpy(self.sim_), "known": torch.from_numpy(self.known_)}

    @classmethod
    def restore(cls, state: dict, snap: Snapshot, device: str = "cpu") -> ItemKNN:
        rec = cls(state["neighbours"])
        rows = by_id(state["item_ids"], snap.item_ids)
        hit = np.flatnonzero(rows >= 0)
        sim = np.zeros((snap.n_items, snap.n_items), np.float32)
        sim[np.ix_(hit, hit)] = state["sim"].numpy()[np.ix_(rows[hit], rows[hit])]
        rec.sim_, rec.item_ids_ = sim, np.asarray(snap.item_ids, dtype=object)
        rec.known_ = np.zeros(snap.n_items, bool)
        rec.known_[hit] = state["known"].numpy()[rows[hit]]
        return rec


def by_id(saved_ids, current_ids) -> np.ndarray:
    """For each current ID, its row in the saved model, or -1 for an ID the model never saw."""
    old = {item: i for i, item in enumerate(saved_ids)}
    return np.array([old.get(item, -1) for item in current_ids], np.int64)
