"""The recommender interface the evaluation harness and the scoring job rely on.

A recommender is fitted on a snapshot (catalogue, texts, profiles) and the training
interactions, and then scores users against the whole catalogue given each user's history
(time-ordered behaviours) and the prediction time. ``-inf`` means "cannot score": an ID-only
model has nothing to say about an item it never saw, and says so.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.snapshot import Snapshot


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


class Recommender(ABC):
    name: str = "recommender"
    # Whether scores are click logits (sigmoid = p(click)); log loss is reported only then.
    probabilistic: bool = False

    @abstractmethod
    def fit(self, snapshot: Snapshot, train: Interactions) -> Recommender: ...

    @abstractmethod
    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        """[len(users), n_items] float32 scores, higher is better, -inf = cannot score."""

    def params(self) -> dict[str, object]:
        """Hyper-parameters, logged with the run."""
        return {}


def popularity_counts(train: Interactions, n_items: int) -> np.ndarray:
    return np.bincount(train.item, minlength=n_items).astype(np.float64)
