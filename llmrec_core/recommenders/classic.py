"""Baselines without a language model: most popular, and item-kNN (cosine, top-k neighbours)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.protocols import DAY
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.recommenders.base import History, Recommender, popularity_counts


class Popularity(Recommender):
    """Items ranked by their number of training interactions (the same list for everyone).

    With ``days`` > 0 only the interactions of the last ``days`` days before the training events
    end count, and ties (items nobody touched in those days, mostly) go to the all-time count: a
    "what is popular now" list, like the scoring job's fallback. ``days`` 0 counts all of them.
    """

    name = "popularity"
    personal = False

    def __init__(self, days: int = 0):
        if days < 0:
            raise ValueError(f"days must be 0 (all of the history) or more, not {days}")
        self.days = days

    def params(self) -> dict[str, object]:
        return {"days": self.days}

    def fit(self, snapshot: Snapshot, train: Interactions) -> Popularity:
        counts = popularity_counts(train, snapshot.n_items)
        order = counts
        if self.days and len(train):
            recent = train.mask(train.ts >= int(train.ts.max()) + 1 - self.days * DAY)
            # The all-time count as a fraction below 1 breaks the ties of the recent counts.
            order = popularity_counts(recent, snapshot.n_items) + counts / (counts.max() + 1.0)
        # Items nobody touched cannot be ranked by popularity.
        self.scores_ = np.where(counts > 0, np.log1p(order), -np.inf).astype(np.float32)
        self.item_ids_ = np.asarray(snapshot.item_ids, dtype=object)
        return self

    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.scores_, (len(users), len(self.scores_))).copy()

    def export(self) -> dict:
        return {"kind": self.name, "name": self.name, "item_ids": list(self.item_ids_), "scores": torch.from_numpy(self.scores_),
                "days": self.days}

    @classmethod
    def restore(cls, state: dict, snap: Snapshot, device: str = "cpu") -> Popularity:
        rec = cls(int(state.get("days", 0)))
        rows = by_id(state["item_ids"], snap.item_ids)
        rec.item_ids_ = np.asarray(snap.item_ids, dtype=object)
        rec.scores_ = np.where(rows >= 0, state["scores"].numpy()[np.maximum(rows, 0)], -np.inf).astype(np.float32)
        return rec


class ItemToItem(Recommender):
    """A user's score for an item: the sum, over the distinct items of the user's history, of an
    item-to-item weight (``sim_[history item, item]``). Items without training interactions
    cannot be scored, nor can a user whose history gives no weight to any item: one without
    history (a profile says nothing to item-to-item weights), or only with items the weights do
    not know (newer than the model). Served, that user gets the popularity fallback, as with
    every model that cannot rank anything for a user; a row of zeros instead would tie every
    item and list the first items of the catalogue."""

    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        out = np.full((len(users), self.sim_.shape[0]), -np.inf, np.float32)
        for row, u in enumerate(users):
            items = np.unique(history.items(u))
            row_scores = self.sim_[items].sum(axis=0)  # an item without training events has no weights
            if row_scores.any():
                out[row] = row_scores
        out[:, ~self.known_] = -np.inf
        return out

    def _fitted(self, snapshot: Snapshot, train: Interactions, sim: np.ndarray):
        self.sim_ = sim.astype(np.float32)
        self.known_ = np.bincount(train.item, minlength=snapshot.n_items) > 0
        self.item_ids_ = np.asarray(snapshot.item_ids, dtype=object)
        return self

    def item_vectors(self) -> np.ndarray:
        """Each item's row of weights: items with the same neighbours are alike."""
        return self.sim_

    def export(self) -> dict:
        return {"kind": self.name, "name": self.name, "params": self.params(), "item_ids": list(self.item_ids_),
                "sim": torch.from_numpy(self.sim_), "known": torch.from_numpy(self.known_)}

    @classmethod
    def restore(cls, state: dict, snap: Snapshot, device: str = "cpu"):
        rec = cls(**state["params"])
        rows = by_id(state["item_ids"], snap.item_ids)
        hit = np.flatnonzero(rows >= 0)
        sim = np.zeros((snap.n_items, snap.n_items), np.float32)
        sim[np.ix_(hit, hit)] = state["sim"].numpy()[np.ix_(rows[hit], rows[hit])]
        rec.sim_, rec.item_ids_ = sim, np.asarray(snap.item_ids, dtype=object)
        rec.known_ = np.zeros(snap.n_items, bool)
        rec.known_[hit] = state["known"].numpy()[rows[hit]]
        return rec


def _binary(snapshot: Snapshot, train: Interactions) -> sparse.csr_matrix:
    """Users x items, 1 where the user interacted with the item (repeats count once)."""
    m = sparse.csr_matrix((np.ones(len(train), np.float32), (train.user, train.item)), shape=(snapshot.n_users, snapshot.n_items))
    m.data[:] = 1.0
    return m


class ItemKNN(ItemToItem):
    """Cosine similarity between items' user sets, shrunk towards 0 for items with few users
    (``co / (|i| |j| + shrink)`` with norms as square roots), top-k neighbours kept per item."""

    name = "item_knn"

    def __init__(self, neighbours: int = 100, shrink: float = 0.0):
        self.neighbours, self.shrink = neighbours, shrink

    def params(self) -> dict[str, object]:
        return {"neighbours": self.neighbours, "shrink": self.shrink}

    def fit(self, snapshot: Snapshot, train: Interactions) -> ItemKNN:
        m = _binary(snapshot, train)
        norms = np.sqrt(np.asarray(m.sum(axis=0))).ravel()
        denominator = norms[:, None] * norms[None, :] + self.shrink
        denominator[denominator == 0] = 1.0
        sim = (m.T @ m).toarray().astype(np.float32) / denominator
        np.fill_diagonal(sim, 0.0)
        if self.neighbours < snapshot.n_items:
            # Exactly k neighbours per item, ties at the cut included or not by position.
            drop = np.argpartition(-sim, self.neighbours - 1, axis=1)[:, self.neighbours:]
            np.put_along_axis(sim, drop, 0.0, axis=1)
        return self._fitted(snapshot, train, sim)


class EASE(ItemToItem):
    """EASE (Steck 2019): the item-to-item weights B that best reconstruct the user-item matrix
    X from itself with a zero diagonal, in closed form: P = (X'X + l2 I)^-1, B = -P / diag(P)."""

    name = "ease"

    def __init__(self, l2: float = 500.0):
        self.l2 = l2

    def params(self) -> dict[str, object]:
        return {"l2": self.l2}

    def fit(self, snapshot: Snapshot, train: Interactions) -> EASE:
        m = _binary(snapshot, train)
        gram = (m.T @ m).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        return self._fitted(snapshot, train, b)


def by_id(saved_ids, current_ids) -> np.ndarray:
    """For each current ID, its row in the saved model, or -1 for an ID the model never saw."""
    old = {item: i for i, item in enumerate(saved_ids)}
    return np.array([old.get(item, -1) for item in current_ids], np.int64)


def same_text(saved_texts, rows: np.ndarray, current_texts) -> np.ndarray:
    """For each current item (``rows`` from :func:`by_id`), whether the saved model knew it with
    this very text: a new item, or one whose text changed, must be encoded again."""
    return np.array([r >= 0 and saved_texts[r] == t for r, t in zip(rows, current_texts, strict=True)], bool)
