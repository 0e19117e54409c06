"""What scoring needs, computed once from the restored model and the snapshot of D.

- :func:`item_side`: item vectors of the whole catalogue (cold items from their text), which
  items may be recommended (available and passing the filters), the popularity fallback.
- :func:`user_inputs`: one ``USER_INPUTS`` row per known user: its vector (from its behaviour
  sequence as of the end of D, or from its profile text alone), how it is scored, what it has
  already seen, and its recent behaviours for reasons.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from llmrec_core.data.protocols import DAY
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.recommenders.base import History
from llmrec_core.recommenders.llm import LlmRecommender
from llmrec_core.scoring.engine import USER_INPUTS, ItemSide, Reranker
from llmrec_core.scoring.tables import COLD_TEXT, MODEL, POPULAR
from llmrec_core.settings import Settings

log = logging.getLogger(__name__)


def popularity(snap: Snapshot, allowed: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Allowed items by positive events of the last ``days`` days (then all time, then index),
    and each one's share of those recent events."""
    ev = snap.events
    positive = ev.label == 1
    recent = positive & (ev.ts >= snap.end_ts - days * DAY)
    n = snap.n_items
    recent_counts = np.bincount(ev.item[recent], minlength=n).astype(np.float64)
    all_counts = np.bincount(ev.item[positive], minlength=n).astype(np.float64)
    items = np.flatnonzero(allowed)
    order = np.lexsort((items, -all_counts[items], -recent_counts[items]))
    items = items[order]
    total = recent_counts.sum()
    return items, (recent_counts[items] / total if total else np.zeros(len(items)))


def item_side(settings: Settings, snap: Snapshot, rec: LlmRecommender, allowed: np.ndarray,
              reranker: dict | None) -> ItemSide:
    sc = settings.scoring
    vectors = rec.all_item_vectors().float().cpu().numpy()
    popular, shares = popularity(snap, allowed, sc.popular_days)
    rr = None
    if reranker is not None:
        rr = Reranker(reranker["state"], reranker["encoder"], settings.rerank, list(snap.item_texts))
    log.info("item side: %d items, %d allowed, %d known only by text, re-rank %s",
             snap.n_items, int(allowed.sum()), int((~rec.known_.cpu().numpy()).sum()), "on" if rr else "off")
    return ItemSide(
        vectors=vectors, scale=1.0 / rec.model_.cfg.tau, bias=float(rec.model_.bias.item()), allowed=allowed,
        text_only=~rec.known_.cpu().numpy(), titles=list(snap.item_titles), popular=popular, popular_scores=shares,
        text=settings.text, k=sc.k, audience_k=sc.audience_k, user_block=sc.user_block, item_block=sc.item_block,
        device=str(rec.device), reranker=rr,
    )


def _lists(indptr: np.ndarray, values: np.ndarray, type_: pa.DataType) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(indptr, pa.int32()), pa.array(values, type_))


def user_inputs(settings: Settings, snap: Snapshot, rec: LlmRecommender, *, context: bool) -> pa.Table:
    """One row per known user (``USER_INPUTS``), in user-index order."""
    n = snap.n_users
    history = History.of(snap.events, n)
    lengths = history.length(np.arange(n))
    has_profile = np.array([bool(t) for t in snap.profile_texts], bool)
    kind = np.where(lengths > 0, MODEL, np.where(has_profile, COLD_TEXT, POPULAR)).astype(np.int8)
    block = settings.scoring.user_block
    vectors = np.concatenate([
        rec.user_vectors(np.arange(s, min(n, s + block)), history, np.full(min(n, s + block) - s, snap.end_ts)).float().cpu().numpy()
        for s in range(0, n, block)
    ]) if n else np.zeros((0, rec.model_.cfg.dim), np.float32)
    ev = snap.events
    # Reasons come from the most recent behaviours.
    keep = settings.scoring.reason_history
    start = np.maximum(history.indptr[:-1], history.indptr[1:] - keep)
    recent = np.concatenate([np.arange(a, b) for a, b in zip(start, history.indptr[1:], strict=True)]) if n else np.zeros(0, np.int64)
    recent_ptr = np.concatenate([[0], np.cumsum(history.indptr[1:] - start)])
    contexts = None
    if context:
        from llmrec_core.recommenders.reranked import history_texts
        from llmrec_core.text import TextRenderer

        contexts = history_texts(np.arange(n), history, snap, TextRenderer(settings.text))
    counts = {name: int((kind == k).sum()) for name, k in (("model", MODEL), ("cold_text", COLD_TEXT), ("popularity", POPULAR))}
    log.info("users: %d (%s)", n, ", ".join(f"{k} {v}" for k, v in counts.items()))
    d = vectors.shape[1]
    return pa.table({
        "user": pa.array(np.arange(n), pa.int32()),
        "vector": pa.ListArray.from_arrays(pa.array(np.arange(n + 1) * d, pa.int32()), pa.array(vectors.ravel(), pa.float32())),
        "kind": pa.array(kind, pa.int8()),
        "seen": _lists(history.indptr, ev.item.astype(np.int32), pa.int32()),
        "hist_items": _lists(recent_ptr, ev.item[recent].astype(np.int32), pa.int32()),
        "hist_types": _lists(recent_ptr, ev.event_type[recent].astype(str), pa.string()),
        "hist_labels": _lists(recent_ptr, ev.label[recent].astype(np.int8), pa.int8()),
        "context": pa.array(contexts if contexts is not None else [None] * n, pa.string()),
    }, schema=USER_INPUTS)
