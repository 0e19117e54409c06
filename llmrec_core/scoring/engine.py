"""Recommendations for one block of users, the same function on every engine.

The scoring job puts the item side (model item vectors, which items may be recommended, the
popularity fallback, titles for reasons, the optional re-ranker) into one :class:`ItemSide`,
and the users into an Arrow table of :data:`USER_INPUTS` rows. The local engine walks that
table in blocks; the Spark engine hands each partition to the same functions with the item
side broadcast. So both produce the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch

from llmrec_core.model_settings import RerankSettings, TextSettings
from llmrec_core.scoring import tables
from llmrec_core.scoring.reasons import pick_behaviours, reason_texts
from llmrec_core.scoring.tables import POPULAR
from llmrec_core.scoring.topk import _top, blocked_topk

SOURCES = np.array(tables.SOURCES, dtype=object)

USER_INPUTS = pa.schema([
    ("user", pa.int32()),            # user index in the snapshot
    ("vector", pa.list_(pa.float32())),
    ("kind", pa.int8()),             # tables.MODEL, COLD_TEXT or POPULAR
    ("seen", pa.list_(pa.int32())),  # item indices never to recommend again
    ("hist_items", pa.list_(pa.int32())),  # recent behaviours, oldest first: reasons come from these
    ("hist_types", pa.list_(pa.string())),
    ("hist_labels", pa.list_(pa.int8())),  # 0 = explicit negative: never a reason
    ("context", pa.string()),        # behaviour text for the cross-encoder (only when re-ranking)
])
USER_ROWS = pa.schema([("user", pa.int32()), ("rank", pa.int32()), ("item", pa.int32()), ("score", pa.float64()),
                       ("reason", pa.string()), ("source", pa.string())])
AUDIENCE_ROWS = pa.schema([("item", pa.int32()), ("user", pa.int32()), ("score", pa.float64())])


@dataclass
class Reranker:
    """Cross-encoder weights and what it needs; loaded once per process on first use."""

    state: dict
    encoder: str
    settings: RerankSettings
    item_texts: list[str]
    _loaded: tuple | None = field(default=None, repr=False)

    def model(self):
        if self._loaded is None:
            from llmrec_core.models.reranker import load_cross_encoder

            self._loaded = load_cross_encoder(self.encoder, self.state)
        return self._loaded

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_loaded": None}  # ship weights, not a loaded model


@dataclass
class ItemSide:
    vectors: np.ndarray          # [n_items, d] float32, the model's item vectors
    scale: float                 # 1 / tau: score = <u, i> * scale + bias = click logit
    bias: float
    allowed: np.ndarray          # bool [n_items]: available and passing the filters
    text_only: np.ndarray        # bool [n_items]: never interacted with, scored from text
    titles: list[str]
    popular: np.ndarray          # allowed item indices, most popular first
    popular_scores: np.ndarray   # their share of recent positive events
    text: TextSettings
    k: int
    audience_k: int
    user_block: int = 4096
    item_block: int = 65536
    device: str = "cpu"
    reranker: Reranker | None = None

    def torch_vectors(self) -> torch.Tensor:
        if getattr(self, "_vectors_t", None) is None:
            self._vectors_t = torch.from_numpy(self.vectors).to(self.device)
        return self._vectors_t

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_vectors_t"}


@dataclass
class UserBlock:
    users: np.ndarray
    vectors: np.ndarray
    kind: np.ndarray
    seen: tuple[np.ndarray, np.ndarray]
    hist: tuple[np.ndarray, np.ndarray]
    hist_types: np.ndarray
    hist_labels: np.ndarray
    context: list

    @classmethod
    def from_arrow(cls, table: pa.Table) -> UserBlock:
        """From a table of ``USER_INPUTS`` rows."""
        t = table.combine_chunks()

        def csr(name: str) -> tuple[np.ndarray, np.ndarray]:
            col = t[name].chunk(0) if t[name].num_chunks else pa.array([], t.schema.field(name).type)
            offsets = col.offsets.to_numpy().astype(np.int64)
            return offsets - offsets[0], col.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]

        vec_ptr, vec = csr("vector")
        d = int(vec_ptr[1]) if len(vec_ptr) > 1 else 0
        _, types = csr("hist_types")
        _, labels = csr("hist_labels")
        seen_ptr, seen = csr("seen")
        hist_ptr, hist = csr("hist_items")
        return cls(t["user"].to_numpy().astype(np.int64), vec.astype(np.float32).reshape(-1, d) if d else np.zeros((len(t), 0), np.float32),
                   t["kind"].to_numpy().astype(np.int8), (seen_ptr, seen.astype(np.int64)), (hist_ptr, hist.astype(np.int64)),
                   types.astype(object), labels.astype(np.int8), t["context"].to_pylist())


def recommend(block: UserBlock, side: ItemSide) -> pa.Table:
    """K rows per user of the block: ``USER_ROWS`` (rank from 1, best first)."""
    n = len(block.users)
    want = max(side.k, side.reranker.settings.top_n) if side.reranker else side.k
    scores = np.full((n, want), -np.inf, np.float32)
    items = np.full((n, want), -1, np.int64)
    scored = np.flatnonzero(block.kind != POPULAR)
    if len(scored):
        sub = _rows(block.seen, scored)
        s, i = blocked_topk(torch.from_numpy(block.vectors[scored]).to(side.device), side.torch_vectors(), want,
                            exclude=sub, allowed=side.allowed, scale=side.scale, bias=side.bias,
                            user_block=side.user_block, item_block=side.item_block)
        scores[scored], items[scored] = s, i
        if side.reranker is not None:
            scores[scored], items[scored] = _rerank(side, [block.context[r] for r in scored], s, i)
    for r in np.flatnonzero(block.kind == POPULAR):
        seen = set(block.seen[1][block.seen[0][r]:block.seen[0][r + 1]].tolist())
        keep = [j for j in range(len(side.popular)) if side.popular[j] not in seen][: side.k]
        items[r, : len(keep)] = side.popular[keep]
        scores[r, : len(keep)] = side.popular_scores[keep]
    scores, items = scores[:, : side.k], items[:, : side.k]
    choice = pick_behaviours(side.vectors, items, block.hist, block.hist_labels)
    reasons = reason_texts(side.text, choice, block.kind, block.hist[1], block.hist_types, side.titles)
    valid = items >= 0
    rows, ranks = np.nonzero(valid)
    source = SOURCES[block.kind[rows]]
    source = np.where((source == "model") & side.text_only[items[valid]], "cold_text", source)
    return pa.table({
        "user": pa.array(block.users[rows], pa.int32()), "rank": pa.array(ranks + 1, pa.int32()),
        "item": pa.array(items[valid], pa.int32()), "score": pa.array(scores[valid].astype(np.float64)),
        "reason": pa.array(reasons[valid], pa.string()), "source": pa.array(source, pa.string()),
    }, schema=USER_ROWS)


def audience(block: UserBlock, side: ItemSide) -> pa.Table:
    """The block's best ``audience_k`` users for every item (a partial top-K: merge blocks with
    :func:`merge_audience`). Users with nothing to score from are never an audience."""
    eligible = block.kind != POPULAR
    if not eligible.any():
        return AUDIENCE_ROWS.empty_table()
    # Who already engaged with each item: the block's seen lists, transposed to items.
    indptr, seen = block.seen
    user_of = np.repeat(np.arange(len(block.users)), np.diff(indptr))
    order = np.lexsort((user_of, seen))
    by_item = np.concatenate([[0], np.cumsum(np.bincount(seen, minlength=len(side.vectors)))]).astype(np.int64)
    s, u = blocked_topk(side.torch_vectors(), torch.from_numpy(block.vectors).to(side.device), side.audience_k,
                        exclude=(by_item, user_of[order]), allowed=eligible, scale=side.scale, bias=side.bias,
                        user_block=side.item_block, item_block=side.user_block)
    valid = u >= 0
    item, _ = np.nonzero(valid)
    return pa.table({"item": pa.array(item, pa.int32()), "user": pa.array(block.users[u[valid]], pa.int32()),
                     "score": pa.array(s[valid].astype(np.float64))}, schema=AUDIENCE_ROWS)


def merge_audience(parts: pa.Table, k: int) -> pa.Table:
    """Best k rows per item by (score desc, user asc), with ``rank`` from 1."""
    item, user, score = (parts[c].to_numpy() for c in ("item", "user", "score"))
    order = np.lexsort((user, -score, item))
    item, user, score = item[order], user[order], score[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(item)) + 1]) if len(item) else np.zeros(0, np.int64)
    rank = np.arange(len(item)) - np.repeat(starts, np.diff(np.concatenate([starts, [len(item)]])))
    keep = rank < k
    return pa.table({"item": pa.array(item[keep], pa.int32()), "rank": pa.array(rank[keep] + 1, pa.int32()),
                     "user": pa.array(user[keep], pa.int32()), "score": pa.array(score[keep])})


def similar_items(side: ItemSide, k: int) -> pa.Table:
    """For every catalogue item, the k allowed items with the most similar model vectors (cosine)."""
    v = side.vectors / np.maximum(np.linalg.norm(side.vectors, axis=1, keepdims=True), 1e-12)
    vt = torch.from_numpy(v.astype(np.float32)).to(side.device)
    n = len(v)
    s, i = blocked_topk(vt, vt, k, exclude=(np.arange(n + 1), np.arange(n)), allowed=side.allowed,
                        user_block=side.user_block, item_block=side.item_block)
    valid = i >= 0
    item, rank = np.nonzero(valid)
    return pa.table({"item": pa.array(item, pa.int32()), "rank": pa.array(rank + 1, pa.int32()),
                     "rec_item": pa.array(i[valid], pa.int32()), "score": pa.array(s[valid].astype(np.float64))})


def _rows(csr: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    indptr, indices = csr
    lengths = indptr[rows + 1] - indptr[rows]
    take = np.concatenate([np.arange(indptr[r], indptr[r + 1]) for r in rows]) if len(rows) else np.zeros(0, np.int64)
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), indices[take.astype(np.int64)]


def _rerank(side: ItemSide, contexts: list[str], scores: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each user's top-N re-scored as two-tower logit + cross-encoder logit, kept above the rest."""
    from llmrec_core.models.reranker import cross_scores
    from llmrec_core.recommenders.reranked import stack_above

    rr = side.reranker
    n = min(rr.settings.top_n, items.shape[1])
    top = items[:, :n]
    pairs = np.argwhere(top >= 0)
    model, tok = rr.model()
    ce = np.full(top.shape, -np.inf, np.float32)
    if len(pairs):
        ce[pairs[:, 0], pairs[:, 1]] = cross_scores(
            model, tok, [contexts[r] or "" for r in pairs[:, 0]], [rr.item_texts[top[r, c]] for r, c in pairs],
            batch_size=4 * rr.settings.batch_size, max_tokens=rr.settings.max_tokens, device=torch.device(side.device))
    combined = stack_above(scores[:, :n] + ce, scores[:, n:])
    # The same order as every other top-K here: score desc, item asc (padding is -inf, so last).
    best_s, best_i = _top(torch.from_numpy(np.ascontiguousarray(combined, np.float32)), torch.from_numpy(top), n)
    out_s, out_i = scores.copy(), items.copy()
    out_s[:, :n], out_i[:, :n] = best_s.numpy(), best_i.numpy()
    return out_s, out_i
