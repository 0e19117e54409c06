"""A content-based baseline: a user's taste in the language model's frozen text vectors.

No training: each item's text is encoded once by the configured encoder (the vectors the text
models start from, shared through their cache), made unit length and centred on the
catalogue's mean, so that what every item's text shares does not rank. A user's taste is the
weighted mean of the vectors of their history's behaviours; an item's score is its dot product
with the taste. ``half_life`` weights recent behaviours up: the weight halves every
``half_life`` behaviours back from the latest (0: a plain mean). ``negative_weight`` scales the
behaviours labelled as explicit dislikes (a rating at or below ``feedback.rating_negative_max``):
1 counts them like any other behaviour, 0 leaves them out, -1 moves the taste away from them.
The weights are divided by the sum of their absolute values.

It is the simplest use of the text that a fitted model should beat, and, like the language
model, it scores items nobody has touched yet from their text alone (``cold_items``). Users
without history (or whose every behaviour weighs 0) have no taste: it cannot score them (-inf),
and the scoring job gives them its popularity fallback.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.models import encoder as lm
from llmrec_core.recommenders.base import History, Recommender
from llmrec_core.recommenders.classic import by_id, same_text
from llmrec_core.recommenders.llm import pick_device
from llmrec_core.topk import unit_rows

log = logging.getLogger(__name__)


class ContentTaste(Recommender):
    """Items scored by their text vector's dot product with the user's taste (module docstring).
    ``encoder``, ``max_tokens``, ``batch_size`` and ``seed`` are the text models' (the same
    vectors, shared through ``cache_dir``); ``device`` is where texts are encoded."""

    name = "content"

    def __init__(self, encoder: str, max_tokens: int, batch_size: int, seed: int, cache_dir: Path | None = None,
                 half_life: float = 0.0, device: str = "cpu", negative_weight: float = 1.0):
        if half_life < 0:
            raise ValueError(f"half_life must be 0 (a plain mean) or more, not {half_life}")
        if not -1.0 <= negative_weight <= 1.0:
            raise ValueError(f"negative_weight must be between -1 and 1, not {negative_weight}")
        self.encoder, self.max_tokens, self.batch_size, self.seed = encoder, max_tokens, batch_size, seed
        self.cache_dir, self.half_life, self.device = cache_dir, half_life, str(pick_device(device))
        self.negative_weight = negative_weight

    def params(self) -> dict[str, object]:
        return {"half_life": self.half_life, "negative_weight": self.negative_weight}

    def fit(self, snapshot: Snapshot, train: Interactions) -> ContentTaste:
        """Encode the catalogue (or read its vectors from the cache) and centre them; the training
        interactions teach nothing, since a taste is read from each user's history when scoring."""
        raw = unit_rows(self._encode(snapshot.item_texts))
        self.centre_ = raw.mean(axis=0) if len(raw) else np.zeros(raw.shape[1], np.float32)
        self.vectors_ = (raw - self.centre_).astype(np.float32)
        self.item_ids_, self.item_texts_ = np.asarray(snapshot.item_ids, dtype=object), list(snapshot.item_texts)
        return self

    def _encode(self, texts: list[str]) -> np.ndarray:
        return lm.frozen_vectors(self.encoder, texts, self.max_tokens, self.batch_size, torch.device(self.device),
                                 seed=self.seed, cache_dir=self.cache_dir).cpu().numpy()

    def weights(self, labels: np.ndarray) -> np.ndarray:
        """The weights of a history whose behaviours, oldest first, carry ``labels`` (0: an
        explicit dislike), their absolute values summing to 1 (all 0 when every weight is 0)."""
        n = len(labels)
        w = np.ones(n, np.float64) if not self.half_life else 0.5 ** (np.arange(n - 1, -1, -1) / self.half_life)
        w[np.asarray(labels) == 0] *= self.negative_weight
        total = np.abs(w).sum()
        return (w / total if total > 0 else w).astype(np.float32)

    def tastes(self, users: np.ndarray, history: History) -> tuple[np.ndarray, np.ndarray]:
        """Each user's taste vector, and whether the user has any history to read it from."""
        out = np.zeros((len(users), self.vectors_.shape[1]), np.float32)
        has = history.length(np.asarray(users, np.int64)) > 0
        for row in np.flatnonzero(has):
            rows = history.rows(int(users[row]))
            w = self.weights(history.events.label[rows])
            has[row] = bool(w.any())
            out[row] = w @ self.vectors_[history.events.item[rows]]
        return out, has

    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        taste, has = self.tastes(users, history)
        out = taste @ self.vectors_.T
        out[~has] = -np.inf
        return out

    def item_vectors(self) -> np.ndarray:
        return self.vectors_

    def export(self) -> dict:
        return {"kind": self.name, "name": self.name, "params": self.params(), "encoder": self.encoder,
                "max_tokens": self.max_tokens, "batch_size": self.batch_size, "seed": self.seed,
                "item_ids": list(self.item_ids_), "item_texts": self.item_texts_,
                "vectors": torch.from_numpy(self.vectors_), "centre": torch.from_numpy(self.centre_)}

    @classmethod
    def restore(cls, state: dict, snap: Snapshot, device: str = "auto") -> ContentTaste:
        """The exported baseline onto any day's catalogue: an item whose text it knows keeps its
        vector; a new item, or one whose text changed, is encoded from its text now (with the same
        encoder and centre), so the content baseline scores new items as it did in training."""
        rec = cls(state["encoder"], int(state["max_tokens"]), int(state["batch_size"]), int(state["seed"]),
                  half_life=float(state["params"]["half_life"]), device=device,
                  negative_weight=float(state["params"].get("negative_weight", 1.0)))
        rows = by_id(state["item_ids"], snap.item_ids)
        same = same_text(state["item_texts"], rows, snap.item_texts)
        rec.centre_ = state["centre"].numpy()
        vectors = np.zeros((snap.n_items, len(rec.centre_)), np.float32)
        vectors[same] = state["vectors"].numpy()[rows[same]]
        fresh = np.flatnonzero(~same)
        if len(fresh):
            vectors[fresh] = unit_rows(rec._encode([snap.item_texts[i] for i in fresh])) - rec.centre_
            log.info("content: encoded %d new or changed item texts", len(fresh))
        rec.vectors_, rec.item_ids_, rec.item_texts_ = vectors, np.asarray(snap.item_ids, dtype=object), list(snap.item_texts)
        return rec
