"""Any recommender's top-N re-scored by the cross-encoder over "behaviours as text [SEP] item text".

Training pairs: for sampled users, the last positive of their training history is the
positive, and the base recommender's best-ranked other items for that moment (history
excluded) are the hard negatives. When ranking, :meth:`Reranked.recommend` takes the base
recommender's top-N (its own ``recommend``), gives each candidate ``base score +
cross-encoder logit`` and keeps the re-ranked candidates above the rest of the list. The
harness and the scoring job both rank through it, so the re-ranked table is the measured one.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.models.reranker import (
    cross_scores,
    load_cross_encoder,
    train_cross_encoder,
)
from llmrec_core.recommenders.base import CSR, History, Recommender
from llmrec_core.settings import RerankSettings, TextSettings
from llmrec_core.text import TextRenderer
from llmrec_core.topk import sort_top

log = logging.getLogger(__name__)
HISTORY_BEHAVIOURS = 10


def history_texts(users: np.ndarray, history: History, snap: Snapshot, render: TextRenderer,
                  since: np.ndarray | None = None, most: int = HISTORY_BEHAVIOURS) -> list[str]:
    """Each user's newest ``most`` behaviours as text (the left side of the cross-encoder's pairs);
    with ``since`` (a flat position in ``history.events`` per user), only behaviours from there on."""
    out = []
    ev = history.events
    for u in users:
        first = int(history.indptr[u]) if since is None else max(int(history.indptr[u]), int(since[u]))
        rows = range(max(first, int(history.indptr[u + 1]) - most), int(history.indptr[u + 1]))
        behaviours = [render.behaviour(ev.event_type[r], None if np.isnan(ev.value[r]) else float(ev.value[r]), snap.item_titles[ev.item[r]]) for r in rows]
        out.append(render.history(behaviours) or snap.profile_texts[u] or "new user")
    return out


class Reranked(Recommender):
    def __init__(self, base: Recommender, settings: RerankSettings, text: TextSettings, encoder: str,
                 device: torch.device, seed: int = 42, max_pairs: int | None = None):
        self.base, self.settings, self.text, self.render = base, settings, text, TextRenderer(text)
        self.encoder, self.device, self.seed = encoder, torch.device(device), seed
        self.max_pairs = max_pairs or (settings.gpu_max_pairs if self.device.type == "cuda" else settings.cpu_max_pairs)
        self.name = f"{base.name}_rerank"
        self.probabilistic = base.probabilistic
        self.weights_: dict | None = None
        self._loaded = None
        # The intraday refresh re-ranks over today's behaviours only: per user, the flat position
        # in the history of its first fresh behaviour, and how many of the newest to read.
        self.left_since: np.ndarray | None = None
        self.left_most = HISTORY_BEHAVIOURS

    def params(self) -> dict[str, object]:
        return {**self.settings.model_dump(), "max_pairs": self.max_pairs, "encoder": self.encoder}

    def _model(self):
        if self._loaded is None:
            self._loaded = load_cross_encoder(self.encoder, self.weights_)
        return self._loaded

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_loaded": None}  # ship weights, not a loaded model

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
        users = np.sort(rng.choice(eligible, size=min(len(eligible), max(1, self.max_pairs // per_user)), replace=False)).astype(np.int64)
        cut = indptr[1:].copy()
        cut[users] = last_pos[users]
        hist = History.of(train.mask(np.arange(len(train)) < cut[train.user]), snap.n_users)
        targets = train.item[last_pos[users]]
        _, top = self.base.recommend(users, hist, train.ts[last_pos[users]], self.settings.hard_negatives + 1)
        left_texts = history_texts(users, hist, snap, self.render)
        left, right, labels = [], [], []
        for i in range(len(users)):
            negs = [c for c in top[i] if c >= 0 and c != targets[i]][: self.settings.hard_negatives]
            for item, label in [(targets[i], 1.0), *((c, 0.0) for c in negs)]:
                left.append(left_texts[i])
                right.append(snap.item_texts[item])
                labels.append(label)
        model, tokenizer = self._loaded = load_cross_encoder(self.encoder)
        torch.manual_seed(self.seed)
        self.losses_ = train_cross_encoder(
            model, tokenizer, left, right, np.array(labels, np.float32), epochs=self.settings.epochs,
            lr=self.settings.lr, batch_size=self.settings.batch_size, max_tokens=self.settings.max_tokens,
            device=self.device, seed=self.seed,
        )
        self.weights_ = {k: v.cpu() for k, v in model.state_dict().items()}
        self.n_pairs_ = len(labels)
        return self

    def _cross(self, users: np.ndarray, history: History, top: np.ndarray) -> np.ndarray:
        """The cross-encoder's logit for each candidate of ``top`` [U, n] (-1 = none: -inf)."""
        pairs = np.argwhere(top >= 0)
        ce = np.full(top.shape, -np.inf, np.float32)
        if len(pairs):
            left = history_texts(users, history, self.snap_, self.render, self.left_since, self.left_most)
            model, tok = self._model()
            ce[pairs[:, 0], pairs[:, 1]] = cross_scores(
                model, tok, [left[r] for r in pairs[:, 0]], [self.snap_.item_texts[top[r, c]] for r, c in pairs],
                batch_size=4 * self.settings.batch_size, max_tokens=self.settings.max_tokens, device=self.device)
        return ce

    def recommend(self, users: np.ndarray, history: History, asof: np.ndarray, k: int, *,
                  exclude: CSR | None = None, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The base list's first ``top_n`` re-scored (base + cross-encoder logit), re-sorted by
        (score desc, item asc) and kept above the rest of the list."""
        users = np.asarray(users, np.int64)
        scores, items = self.base.recommend(users, history, asof, max(k, self.settings.top_n), exclude=exclude, allowed=allowed)
        n = min(self.settings.top_n, items.shape[1])
        combined = stack_above(scores[:, :n] + self._cross(users, history, items[:, :n]), scores[:, n:])
        best_s, best_i = sort_top(torch.from_numpy(np.ascontiguousarray(combined, np.float32)),
                                  torch.from_numpy(np.ascontiguousarray(items[:, :n])), n)
        scores[:, :n], items[:, :n] = best_s.numpy(), best_i.numpy()
        return scores[:, :k], items[:, :k]

    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        """Base scores with the history masked and the top-N re-scored, kept above the rest."""
        users = np.asarray(users, np.int64)
        scores = history.mask_seen(self.base.score(users, history, asof).astype(np.float32, copy=True), users)
        top_s, top = self.base.recommend(users, history, asof, self.settings.top_n)
        rows, cols = np.nonzero(top >= 0)
        rest = scores.copy()
        rest[rows, top[rows, cols]] = -np.inf
        scores[rows, top[rows, cols]] = stack_above(top_s + self._cross(users, history, top), rest)[rows, cols]
        return scores

    def audience(self, users: np.ndarray, history: History, asof: np.ndarray, k: int, *,
                 eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The base recommender's: the cross-encoder re-orders a user's list, it does not rank users."""
        return self.base.audience(users, history, asof, k, eligible=eligible)

    def item_vectors(self) -> np.ndarray | None:
        return self.base.item_vectors()

    def head(self) -> dict:
        """The cross-encoder alone (what a bundle keeps beside its base model)."""
        return {"weights": self.weights_, "encoder": self.encoder, "settings": self.settings.model_dump()}

    def export(self) -> dict:
        return {"kind": "rerank", "name": self.name, "base": self.base.export(), **self.head()}

    @classmethod
    def restore(cls, state: dict, base: Recommender, snap: Snapshot, text: TextSettings, device: str) -> Reranked:
        rec = cls(base, RerankSettings(**state["settings"]), text, state["encoder"], torch.device(device))
        rec.weights_, rec.snap_ = state["weights"], snap
        return rec


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
