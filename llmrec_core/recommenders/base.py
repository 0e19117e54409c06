"""The recommender contract: what the evaluation harness and the nightly scoring job call.

A recommender is fitted on a snapshot (catalogue, texts, profiles) and the training
interactions. Given users, each user's history (time-ordered behaviours) and the prediction
time, it

- **ranks**: :meth:`Recommender.recommend` returns each user's top-k items, best first, with
  already-seen items excluded. The harness measures these lists and the scoring job publishes
  them, so a benchmark number is a number about the served table;
- **scores**: :meth:`Recommender.score` gives every (user, item) score, ``-inf`` meaning "cannot
  score" (an ID-only model has nothing to say about an item it never saw, and says so);
- finds an item's **audience** (:meth:`Recommender.audience`) and says how alike two items
  are (:meth:`Recommender.item_vectors`, for reasons and similar items);
- **travels**: :meth:`Recommender.export` turns it into tensors and plain values and
  :func:`llmrec_core.recommenders.portable.restore` puts it back onto any day's catalogue.

The default ``recommend`` and ``audience`` run ``score`` through the one blocked top-K of
:mod:`llmrec_core.topk`; a model with a faster path (the LLM's vectors) overrides them and
must return the same lists.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.topk import csr_rows, topk_of_scores, transpose_csr

BLOCK = 512  # users scored at once by the default paths
CSR = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class History:
    """Per-user slices of time-ordered interactions."""

    events: Interactions
    indptr: np.ndarray

    @classmethod
    def of(cls, events: Interactions, n_users: int) -> History:
        return cls(events, events.indptr(n_users))

    def rows(self, user: int) -> slice:
        return slice(int(self.indptr[user]), int(self.indptr[user + 1]))

    def items(self, user: int) -> np.ndarray:
        return self.events.item[self.rows(user)]

    def length(self, users: np.ndarray) -> np.ndarray:
        return self.indptr[users + 1] - self.indptr[users]

    def last_ts(self, users: np.ndarray) -> np.ndarray:
        """Each user's latest behaviour time (the history is time-ordered), -1 for none."""
        users = np.asarray(users, np.int64)
        starts, stops = self.indptr[users], self.indptr[users + 1]
        if not len(self.events):
            return np.full(len(users), -1, np.int64)
        return np.where(stops > starts, self.events.ts[np.maximum(stops - 1, 0)], -1)

    def seen(self, users: np.ndarray) -> CSR:
        """Each user's history items as CSR over ``users``: what is never recommended again."""
        return csr_rows((self.indptr, self.events.item), np.asarray(users, np.int64))

    def mask_seen(self, scores: np.ndarray, users: np.ndarray) -> np.ndarray:
        """``scores`` [len(users), n_items] with each user's history items set to -inf (in place)."""
        indptr, items = self.seen(users)
        scores[np.repeat(np.arange(len(users)), np.diff(indptr)), items] = -np.inf
        return scores


class Recommender(ABC):
    name: str = "recommender"
    # Whether scores are click logits (sigmoid = p(click)); log loss is reported only then.
    probabilistic: bool = False
    # Whether a user's list depends on the user. A list that does not is never explained by the
    # user's own behaviours (``TextSettings.reason_popular_list`` instead).
    personal: bool = True

    @abstractmethod
    def fit(self, snapshot: Snapshot, train: Interactions) -> Recommender: ...

    @abstractmethod
    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        """[len(users), n_items] float32 scores, higher is better, -inf = cannot score."""

    def params(self) -> dict[str, object]:
        """Hyper-parameters, logged with the run."""
        return {}

    def recommend(self, users: np.ndarray, history: History, asof: np.ndarray, k: int, *,
                  exclude: CSR | None = None, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each user's k best items by (score desc, item asc): (scores [U, k] float32, items [U, k]
        int64), padded with (-inf, -1) when fewer can be recommended.

        ``exclude``: CSR over ``users`` of items never to return; by default each user's history
        (already seen). ``allowed``: boolean mask over items (available, passing the filters).
        Items the model cannot score (-inf) are never returned."""
        users = np.asarray(users, np.int64)
        exclude = history.seen(users) if exclude is None else exclude
        out_s = np.full((len(users), k), -np.inf, np.float32)
        out_i = np.full((len(users), k), -1, np.int64)
        for s in range(0, len(users), BLOCK):
            rows = np.arange(s, min(len(users), s + BLOCK))
            scores = self.score(users[rows], history, asof[rows])
            out_s[rows], out_i[rows] = topk_of_scores(scores, k, exclude=csr_rows(exclude, rows), allowed=allowed)
        return out_s, out_i

    def audience(self, users: np.ndarray, history: History, asof: np.ndarray, k: int, *,
                 eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For every item, the k users of ``users`` most likely to want it, among those that have
        not seen it and are ``eligible`` (mask over ``users``): (scores [n_items, k], positions
        into ``users`` [n_items, k]), padded with (-inf, -1)."""
        users = np.asarray(users, np.int64)
        scores = np.concatenate([self.score(users[s : s + BLOCK], history, asof[s : s + BLOCK])
                                 for s in range(0, len(users), BLOCK)]) if len(users) else np.zeros((0, 0), np.float32)
        n_items = scores.shape[1] if len(users) else 0
        engaged = transpose_csr(history.seen(users), n_items)
        return topk_of_scores(scores.T, k, exclude=engaged, allowed=eligible)

    def item_vectors(self) -> np.ndarray | None:
        """[n_items, d] vectors whose cosine says how alike two items are (reasons and similar
        items), or None when the model has no such notion."""
        return None

    def export(self) -> dict:
        """The fitted model as tensors and plain values (no code objects): see ``portable``."""
        raise NotImplementedError(f"{self.name} cannot be exported")


def popularity_counts(train: Interactions, n_items: int) -> np.ndarray:
    return np.bincount(train.item, minlength=n_items).astype(np.float64)
