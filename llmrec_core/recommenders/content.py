"""A content-based baseline: a user's taste in the language model's frozen text vectors.

No training: each item's text is encoded once by the configured encoder (the vectors the text
models start from, shared through their cache), made unit length and centred on the
catalogue's mean, so that what every item's text shares does not rank. A user's taste is the
weighted sum of the vectors of their history's behaviours; an item's score is its dot product
with the taste. ``half_life`` weights recent behaviours up: the weight halves every
``half_life`` behaviours back from the latest (0: a plain mean). ``negative_weight`` scales the
behaviours labelled as explicit dislikes (a rating at or below ``feedback.rating_negative_max``):
1 counts them like any other behaviour, 0 leaves them out, -1 moves the taste away from them.
The weights are divided by the sum of their absolute values.

It is the simplest use of the text that a fitted model should beat, and, like the language
model, it scores items nobody has touched yet from their text alone (``cold_items``). Users
without history (or whose weighted behaviours weigh 0 or cancel out) have no taste: it cannot
score them (-inf), and the scoring job gives them its popularity fallback. The language model
reads the same tastes (:func:`tastes`) to rank the items it knows by text only
(``model.cold_taste_weight``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from scipy import sparse

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.models import encoder as lm
from llmrec_core.recommenders.base import History, Recommender
from llmrec_core.recommenders.classic import by_id, same_text
from llmrec_core.topk import blocked_topk, transpose_csr, unit_rows

log = logging.getLogger(__name__)


def history_weights(back: np.ndarray, labels: np.ndarray, owner: np.ndarray, n_owners: int, half_life: float,
                    negative_weight: float) -> np.ndarray:
    """Each behaviour's weight in its owner's taste, from how many behaviours back from the
    owner's latest it is and its label (module docstring), over the histories of ``n_owners``
    users at once; each owner's absolute weights sum to 1 (or are all 0)."""
    w = np.ones(len(back), np.float64) if not half_life else 0.5 ** (back / half_life)
    w[labels == 0] *= negative_weight
    total = np.bincount(owner, np.abs(w), minlength=n_owners)
    return (w / np.where(total > 0, total, 1.0)[owner]).astype(np.float32)


def tastes(users: np.ndarray, history: History, vectors: np.ndarray, half_life: float = 0.0,
           negative_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Each user's taste, the weighted sum of the ``vectors`` of their history's items, and
    whether the user has one (a history whose weighted vectors do not all weigh 0 or cancel
    out): one sparse product over every user's weighted behaviours."""
    users = np.asarray(users, np.int64)
    starts, stops = history.indptr[users], history.indptr[users + 1]
    lengths = (stops - starts).astype(np.int64)
    owner = np.repeat(np.arange(len(users)), lengths)
    ends = np.cumsum(lengths)
    rows = np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - lengths - starts, lengths)  # event rows
    w = history_weights(np.repeat(stops, lengths) - 1 - rows, history.events.label[rows], owner, len(users), half_life,
                        negative_weight)
    mix = sparse.csr_matrix((w, history.events.item[rows], np.r_[0, ends]), shape=(len(users), len(vectors)))
    taste = np.asarray(mix @ vectors, np.float32)
    return taste, (taste != 0).any(axis=1)


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
        self.cache_dir, self.half_life, self.device = cache_dir, half_life, str(lm.pick_device(device))
        self.negative_weight = negative_weight

    def params(self) -> dict[str, object]:
        return {"half_life": self.half_life, "negative_weight": self.negative_weight}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_device_items": None}  # a broadcast ships the vectors once

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
        return history_weights(np.arange(n - 1, -1, -1), np.asarray(labels), np.zeros(n, np.int64), 1,
                               self.half_life, self.negative_weight)

    def tastes(self, users: np.ndarray, history: History) -> tuple[np.ndarray, np.ndarray]:
        """The users' tastes in this baseline's vectors, with its weights (:func:`tastes`)."""
        return tastes(users, history, self.vectors_, self.half_life, self.negative_weight)

    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        taste, has = self.tastes(users, history)
        out = taste @ self.vectors_.T
        out[~has] = -np.inf
        return out

    # The fast paths: vectors and the blocked top-K, never a users x items matrix.
    def recommend(self, users: np.ndarray, history: History, asof: np.ndarray, k: int, *,
                  exclude=None, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        users = np.asarray(users, np.int64)
        exclude = history.seen(users) if exclude is None else exclude
        taste, has = self.tastes(users, history)
        scores, items = blocked_topk(self._on_device(taste), self._items_on_device(), k, exclude=exclude, allowed=allowed)
        scores[~has], items[~has] = -np.inf, -1
        return scores, items

    def audience(self, users: np.ndarray, history: History, asof: np.ndarray, k: int, *,
                 eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        users = np.asarray(users, np.int64)
        taste, has = self.tastes(users, history)
        engaged = transpose_csr(history.seen(users), len(self.vectors_))
        return blocked_topk(self._items_on_device(), self._on_device(taste), k, exclude=engaged,
                            allowed=has if eligible is None else eligible & has)

    def _on_device(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(self.device)

    def _items_on_device(self) -> torch.Tensor:
        """The item vectors where the top-K runs, copied there once (every block reuses them)."""
        kept = getattr(self, "_device_items", None)
        if kept is None or kept[0] is not self.vectors_:
            self._device_items = kept = (self.vectors_, self._on_device(self.vectors_))
        return kept[1]

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
