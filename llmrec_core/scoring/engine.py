"""Recommendations for one block of users, the same function on every engine.

The scoring job puts everything that does not depend on the block into one :class:`Scoring`:
the restored recommender (any kind the registry holds, re-ranked or not), every user's
history up to the end of D, how each user is scored, which items may be recommended, the
popularity fallback and what reasons need. The local engine walks the users in blocks; the
Spark engine hands each partition's users to the same functions with ``Scoring`` broadcast.
So both produce the same rows, and those rows are the recommender's own ``recommend`` lists and
the popularity fallback for users it does not rank for (:func:`ranked`): the lists the
evaluation harness measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np
import pyarrow as pa
import torch

from llmrec_core.io import serving_schema as tables
from llmrec_core.io.serving_schema import COLD_TEXT, MODEL, POPULAR
from llmrec_core.recommenders.base import History, Recommender
from llmrec_core.scoring.reasons import pick_behaviours, reason_texts
from llmrec_core.settings import TextSettings
from llmrec_core.topk import blocked_topk, unit_rows

SOURCES = np.array(tables.SOURCES, dtype=object)

USER_ROWS = pa.schema([("user", pa.int32()), ("rank", pa.int32()), ("item", pa.int32()), ("score", pa.float64()),
                       ("reason", pa.string()), ("source", pa.string())])
AUDIENCE_ROWS = pa.schema([("item", pa.int32()), ("user", pa.int32()), ("score", pa.float64())])


@dataclass
class Scoring:
    rec: Recommender             # what ranks: ``rec.recommend`` and ``rec.audience``
    history: History             # every user's behaviours up to the end of D
    asof: np.ndarray             # [n_users] prediction time: the end of D
    kind: np.ndarray             # [n_users] int8: MODEL, COLD_TEXT or POPULAR (nothing to score from)
    vectors: np.ndarray | None   # [n_items, d] item vectors for reasons and similar items
    allowed: np.ndarray          # bool [n_items]: available and passing the filters
    text_only: np.ndarray        # bool [n_items]: never interacted with, scored from text
    titles: list[str]
    popular: np.ndarray          # allowed item indices, most popular first
    popular_scores: np.ndarray   # their share of recent positive events
    text: TextSettings
    k: int
    audience_k: int
    reason_history: int = 50     # newest behaviours a reason may point at
    user_block: int = 4096
    item_block: int = 65536
    device: str = "cpu"
    fresh: np.ndarray | None = None  # bool over ``history.events``: behaviours of today (intraday refresh)

    @property
    def n_users(self) -> int:
        return len(self.kind)

    def recent(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CSR over ``users`` of the flat positions of their newest ``reason_history`` behaviours."""
        indptr = self.history.indptr
        start = np.maximum(indptr[users], indptr[users + 1] - self.reason_history)
        lengths = indptr[users + 1] - start
        pos = np.concatenate([np.arange(a, b) for a, b in zip(start, indptr[users + 1], strict=True)]) if len(users) else np.zeros(0, np.int64)
        return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), pos.astype(np.int64)


def kinds(history: History, users: np.ndarray, profile_texts: Sequence[str]) -> np.ndarray:
    """How each of ``users`` is scored: from their behaviours (MODEL), from their profile's text
    alone (COLD_TEXT; ``profile_texts`` is every user's, empty for none), or, with neither, by the
    popularity fallback (POPULAR)."""
    has_profile = np.array([bool(profile_texts[u]) for u in users], bool)
    return np.where(history.length(users) > 0, MODEL, np.where(has_profile, COLD_TEXT, POPULAR)).astype(np.int8)


def ranked(rec: Recommender, users: np.ndarray, kind: np.ndarray, history: History, asof: np.ndarray, k: int,
           allowed: np.ndarray | None, popular: np.ndarray, popular_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's k rows as they are served, the one rule of the scoring job and the evaluation
    harness: ``rec.recommend`` for the users it scores (``kind`` not POPULAR), and the popularity
    fallback (``popular`` in order, without what the user has seen) for the others and for any
    user the model can rank nothing for: ALS knows only the users it was trained on, and a baseline
    that reads no profile (item-kNN, EASE, content, ALS) cannot score a user known only by one.
    Returns (scores [U, k], items [U, k], padded with (-inf, -1)) and the kind each user was served by."""
    users = np.asarray(users, np.int64)
    n, kind = len(users), kind.copy()
    scores = np.full((n, k), -np.inf, np.float32)
    items = np.full((n, k), -1, np.int64)
    scored = np.flatnonzero(kind != POPULAR)
    if len(scored):
        scores[scored], items[scored] = rec.recommend(users[scored], history, asof[scored], k, allowed=allowed)
        kind[scored[items[scored, 0] < 0]] = POPULAR
    order = popular.tolist()
    for r in np.flatnonzero(kind == POPULAR):
        seen = set(history.items(int(users[r])).tolist())
        keep = list(islice((j for j, item in enumerate(order) if item not in seen), k))
        items[r, : len(keep)] = popular[keep]
        scores[r, : len(keep)] = popular_scores[keep]
    return scores, items, kind


def recommend(users: np.ndarray, sc: Scoring) -> pa.Table:
    """K rows per user of the block: ``USER_ROWS`` (rank from 1, best first)."""
    users = np.asarray(users, np.int64)
    scores, items, kind = ranked(sc.rec, users, sc.kind[users], sc.history, sc.asof[users], sc.k, sc.allowed, sc.popular,
                                 sc.popular_scores)
    ev = sc.history.events
    recent_ptr, recent = sc.recent(users)
    # A list that is the same for everyone: no behaviour of the user's chose it.
    personal = sc.rec.personal
    choice = (pick_behaviours(sc.vectors, items, (recent_ptr, ev.item[recent]), ev.label[recent]) if personal
              else np.full(items.shape, -1, np.int64))
    reasons = reason_texts(sc.text, choice, kind, ev.item[recent], ev.event_type[recent].astype(str), sc.titles,
                           fresh=None if sc.fresh is None else sc.fresh[recent], hist_values=ev.value[recent], personal=personal)
    valid = items >= 0
    rows, ranks = np.nonzero(valid)
    source = SOURCES[kind[rows]]
    source = np.where((source == "model") & sc.text_only[items[valid]], "cold_text", source)
    return pa.table({
        "user": pa.array(users[rows], pa.int32()), "rank": pa.array(ranks + 1, pa.int32()),
        "item": pa.array(items[valid], pa.int32()), "score": pa.array(scores[valid].astype(np.float64)),
        "reason": pa.array(reasons[valid], pa.string()), "source": pa.array(source, pa.string()),
    }, schema=USER_ROWS)


def audience(users: np.ndarray, sc: Scoring) -> pa.Table:
    """The block's best ``audience_k`` users for every item (a partial top-K: merge blocks with
    :func:`merge_audience`). Users with nothing to score from, or who already engaged with the
    item, are never its audience."""
    users = np.asarray(users, np.int64)
    eligible = sc.kind[users] != POPULAR
    if not eligible.any():
        return AUDIENCE_ROWS.empty_table()
    s, pos = sc.rec.audience(users, sc.history, sc.asof[users], sc.audience_k, eligible=eligible)
    valid = pos >= 0
    item, _ = np.nonzero(valid)
    return pa.table({"item": pa.array(item, pa.int32()), "user": pa.array(users[pos[valid]], pa.int32()),
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


def similar_items(sc: Scoring, k: int) -> pa.Table:
    """For every catalogue item, the k allowed items with the most similar item vectors (cosine);
    a model without item vectors gives the most popular allowed items."""
    n = len(sc.allowed)
    itself = (np.arange(n + 1), np.arange(n))
    if sc.vectors is None:
        order = np.zeros(n, np.float32)  # the fallback's order (recent, then all-time popularity)
        order[sc.popular] = len(sc.popular) - np.arange(len(sc.popular))
        _, i = blocked_topk(torch.ones((n, 1)), torch.from_numpy(order)[:, None], k, exclude=itself, allowed=sc.allowed,
                            user_block=sc.user_block, item_block=sc.item_block)
        share = np.zeros(n, np.float32)
        share[sc.popular] = sc.popular_scores
        s = np.where(i >= 0, share[np.maximum(i, 0)], -np.inf)
    else:
        vt = torch.from_numpy(unit_rows(sc.vectors).astype(np.float32)).to(sc.device)
        s, i = blocked_topk(vt, vt, k, exclude=itself, allowed=sc.allowed, user_block=sc.user_block, item_block=sc.item_block)
    valid = i >= 0
    item, rank = np.nonzero(valid)
    return pa.table({"item": pa.array(item, pa.int32()), "rank": pa.array(rank + 1, pa.int32()),
                     "rec_item": pa.array(i[valid], pa.int32()), "score": pa.array(s[valid].astype(np.float64))})

