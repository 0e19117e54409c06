"""Interactions as columnar numpy arrays, sorted by (user, time), with per-user slicing.

Behaviour "kinds" are the tokens the sequence encoder sees: one per non-rating event type and
one per rating bucket (11 buckets over the configured rating range). Labels follow the feedback
settings: 1 positive, 0 explicit negative, -1 history only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from llmrec_core.io import tensorfile
from llmrec_core.settings import FeedbackSettings

PAD = 0
RATING_BUCKETS = 11


@tensorfile.storable
@dataclass(frozen=True)
class KindVocab:
    event_types: tuple[str, ...]
    rating_type: str
    rating_min: float
    rating_max: float

    @classmethod
    def from_feedback(cls, fb: FeedbackSettings) -> KindVocab:
        others = tuple(t for t in fb.event_types if t != fb.rating_type)
        return cls(others, fb.rating_type, fb.rating_min, fb.rating_max)

    @property
    def size(self) -> int:
        return 1 + len(self.event_types) + RATING_BUCKETS + 1  # pad, types, ratings, unknown

    def encode(self, event_type: np.ndarray, value: np.ndarray) -> np.ndarray:
        kind = np.full(len(event_type), self.size - 1, dtype=np.int16)
        for i, t in enumerate(self.event_types):
            kind[event_type == t] = 1 + i
        rated = event_type == self.rating_type
        span = max(self.rating_max - self.rating_min, 1e-9)
        v = np.nan_to_num(value[rated].astype(np.float64), nan=self.rating_min)
        bucket = np.clip(np.rint((v - self.rating_min) / span * (RATING_BUCKETS - 1)), 0, RATING_BUCKETS - 1)
        kind[rated] = 1 + len(self.event_types) + bucket.astype(np.int16)
        return kind


def feedback_labels(fb: FeedbackSettings, event_type: np.ndarray, value: np.ndarray) -> np.ndarray:
    label = np.full(len(event_type), -1, dtype=np.int8)
    label[np.isin(event_type, fb.positive_types)] = 1
    rated = event_type == fb.rating_type
    v = value.astype(np.float64)
    label[rated & (v >= fb.rating_positive_min)] = 1
    label[rated & (v <= fb.rating_negative_max)] = 0
    return label


@dataclass(frozen=True)
class Interactions:
    """Parallel arrays, sorted by (user, ts); ``ts`` in epoch seconds."""

    user: np.ndarray  # int32 user index
    item: np.ndarray  # int32 item index
    kind: np.ndarray  # int16 behaviour kind
    label: np.ndarray  # int8: 1 positive, 0 explicit negative, -1 history only
    ts: np.ndarray  # int64
    value: np.ndarray  # float32, NaN when absent
    event_type: np.ndarray  # str

    def __len__(self) -> int:
        return len(self.user)

    def take(self, idx: np.ndarray) -> Interactions:
        return Interactions(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def mask(self, keep: np.ndarray) -> Interactions:
        return self.take(np.flatnonzero(keep))

    def sorted(self) -> Interactions:
        """Sorted by (user, ts). The sort is stable: events in the same second keep their order,
        which callers make uninformative (the snapshot orders them by event-id hash). Ordering
        ties by item would leak: in MovieLens half of a user's consecutive ratings share a second,
        and a held-out "last" item would be the largest ID of its group."""
        return self.take(np.lexsort((self.ts, self.user)))

    def indptr(self, n_users: int) -> np.ndarray:
        """Row pointers: user u's events are ``[indptr[u], indptr[u + 1])``."""
        return np.concatenate([[0], np.cumsum(np.bincount(self.user, minlength=n_users))]).astype(np.int64)

    @staticmethod
    def concat(parts: list[Interactions]) -> Interactions:
        return Interactions(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Interactions)}
        ).sorted()
