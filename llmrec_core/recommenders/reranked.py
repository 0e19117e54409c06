"""Two-tower candidates re-scored by the cross-encoder.

Training pairs: for sampled users, the last positive of their training history is the
positive, and the two-tower model's best-ranked other items for that moment (history
excluded) are the hard negatives. At scoring time each user's top-N candidates get
``two-tower logit + cross-encoder logit`` and stay above the rest of the catalogue.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.evaluation import masked_scores
from llmrec_core.model_settings import RerankSettings, TextSettings
from llmrec_core.models.reranker import (
    cross_scores,
    load_cross_encoder,
    train_cross_encoder,
)
from llmrec_core.recommenders.base import History, Recommender
from llmrec_core.text import TextRenderer

log = logging.getLogger(__name__)
HISTORY_BEHAVIOURS = 10


def history_texts(users: np.ndarray, history: History, snap: Snapshot, render: TextRenderer) -> list[str]:
    out = []
    ev = history.events
    for u in users:
        rows = range(max(int(history.indptr[u]), int(history.indptr[u + 1]) - HISTORY_BEHAVIOURS), int(history.indptr[u + 1]))
        behaviours = [render.behaviour(ev.event_type[r], None if np.isnan(ev.value[r]) else float(ev.value[r]), snap.item_titles[ev.item[r]]) for r in rows]
        out.append(render.history(behaviours) or snap.profile_texts[u] or "new user")
    return out


def candidates(base: Recommender, users: np.ndarray, history: History, asof: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Base scores with history masked, and each user's top-n columns (best first)."""
    scores = masked_scores(base, users, history, asof)
    n = min(n, scores.shape[1])
    top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
    return scores, np.take_along_axis(top, order, 1)


class Reranked(Recommender):
    def __init__(self, base: Recommender, settings: RerankSettings, text: TextSettings, encoder: str,
                 device: torch.device, seed: int = 42, max_pairs: int | None = None):
        self.base, self.settings, self.render = base, settings, TextRenderer(text)
        self.encoder, self.device, self.seed = encoder, device, seed
        self.max_pairs = max_pairs or (settings.gpu_max_pairs if device.type == "cuda" else settings.cpu_max_pairs)
        self.name = f"{base.name}_rerank"

    def params(self) -> dict[str, object]:
        return {**self.settings.model_dump(), "max_pairs": self.max_pairs, "encoder": self.encoder}

    def fit(self, snap: Snapshot, train: Interactions) -> Reranked:
        """Mine pairs with the (already fitted) base model and train the cross-encoder."""
        self.snap_ = snap
        rng = np.random.default_rng(self.seed)
        indptr = train.indptr(snap.n_users)
        last_pos = np.full(snap.n_users, -1, np.int64)
        rows = np.flatnonzero(train.label == 1)
        np.maximum.at(last_pos, train.user[rows], rows)  # each user's newest positive
        eligible = np.flatnonzero((last_pos > indptr[:-1]))
        per_user = 1 + self.settings.hard_negatives
        users = np.sort(rng.choice(eligible, size=min(len(eligible), max(1, self.max_pairs // per_user)), replace=False)).astype(np.int32)
        cut = indptr[1:].copy()
        cut[users] = last_pos[users]
        row_user_cut = cut[train.user]
        hist = History.of(train.mask(np.arange(len(train)) < row_user_cut), snap.n_users)
        targets = train.item[last_pos[users]]
        _, top = candidates(self.base, users, hist, train.ts[last_pos[users]], self.settings.hard_negatives + 1)
        left_texts = history_texts(users, hist, snap, self.render)
        left, right, labels = [], [], []
        for i, u in enumerate(users):
            negs = [c for c in top[i] if c != targets[i]][: self.settings.hard_negatives]
            for item, label in [(targets[i], 1.0), *((c, 0.0) for c in negs)]:
                left.append(left_texts[i])
                right.append(snap.item_texts[item])
                labels.append(label)
        self.model_, self.tokenizer_ = load_cross_encoder(self.encoder)
        torch.manual_seed(self.seed)
        self.losses_ = train_cross_encoder(
            self.model_, self.tokenizer_, left, right, np.array(labels, np.float32), epochs=self.settings.epochs,
            lr=self.settings.lr, batch_size=self.settings.batch_size, max_tokens=self.settings.max_tokens,
            device=self.device, seed=self.seed,
        )
        self.n_pairs_ = len(labels)
        return self

    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        scores, top = candidates(self.base, users, history, asof, self.settings.top_n)
        left = history_texts(users, history, self.snap_, self.render)
        pairs_left = [left[i] for i in range(len(users)) for _ in range(top.shape[1])]
        pairs_right = [self.snap_.item_texts[c] for c in top.ravel()]
        ce = cross_scores(self.model_, self.tokenizer_, pairs_left, pairs_right, batch_size=4 * self.settings.batch_size,
                          max_tokens=self.settings.max_tokens, device=self.device).reshape(top.shape)
        base_top = np.take_along_axis(scores, top, 1)
        rest = scores.copy()
        np.put_along_axis(rest, top, -np.inf, 1)
        np.put_along_axis(scores, top, stack_above(base_top + ce, rest), 1)
        return scores


def stack_above(combined: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """``combined`` shifted per row so that its finite scores all lie above ``rest``'s: re-ranked
    candidates stay above everything that was not a candidate. -inf stays -inf."""
    combined = np.where(np.isfinite(combined), combined, -np.inf)
    finite_rest = np.isfinite(rest)
    if not finite_rest.any():
        return combined  # nothing to stay above: the scores are the re-ranker's own
    ceiling = np.max(np.where(finite_rest, rest, -np.inf), axis=1, keepdims=True)
    ceiling = np.where(np.isfinite(ceiling), ceiling, 0.0)
    floor = np.min(np.where(np.isfinite(combined), combined, np.inf), axis=1, keepdims=True)
    floor = np.where(np.isfinite(floor), floor, 0.0)
    return combined - floor + ceiling + 1.0
