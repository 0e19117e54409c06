"""What scoring needs, computed once from the restored recommender and the snapshot of D.

- :func:`popularity`: the fallback for users with nothing to score from, as of the end of D
  (:func:`popular_items`: as of any time, which the evaluation harness uses);
- :func:`scoring_inputs`: how each user is scored (from its behaviour sequence as of the end of
  D, from its profile text alone, or by the fallback), every user's history (what was seen,
  what reasons point at), which items may be recommended, and the recommender itself;
- :func:`assemble`: the rule it decides by, which requests to a registered version share.
"""

from __future__ import annotations

import logging

import numpy as np

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.protocols import DAY
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.io.serving_schema import COLD_TEXT, MODEL, POPULAR
from llmrec_core.recommenders.base import History, Recommender
from llmrec_core.recommenders.llm import LlmRecommender
from llmrec_core.scoring.engine import Scoring, kinds
from llmrec_core.settings import ScoringSettings, Settings, TextSettings

log = logging.getLogger(__name__)


def popularity(snap: Snapshot, allowed: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`popular_items` of the snapshot of D, at the end of D."""
    return popular_items(snap.events, snap.end_ts, snap.n_items, allowed, days)


def popular_items(ev: Interactions, end_ts: int, n: int, allowed: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``allowed`` of ``n`` items by positive events of ``ev`` in the ``days`` days before
    ``end_ts`` (then by positive events of all time before it, then by index), and each one's
    share of those recent events."""
    positive = (ev.label == 1) & (ev.ts < end_ts)
    recent = positive & (ev.ts >= end_ts - days * DAY)
    recent_counts = np.bincount(ev.item[recent], minlength=n).astype(np.float64)
    all_counts = np.bincount(ev.item[positive], minlength=n).astype(np.float64)
    items = np.flatnonzero(allowed)
    order = np.lexsort((items, -all_counts[items], -recent_counts[items]))
    items = items[order]
    total = recent_counts.sum()
    return items, (recent_counts[items] / total if total else np.zeros(len(items)))


def scoring_inputs(settings: Settings, snap: Snapshot, rec: Recommender, allowed: np.ndarray) -> Scoring:
    """Everything the engines need for day D, computed once."""
    sc = settings.scoring
    n = snap.n_users
    popular, shares = popularity(snap, allowed, sc.popular_days)
    out = assemble(rec, History.of(snap.events, n), np.full(n, snap.end_ts, np.int64), snap.profile_texts, allowed,
                   list(snap.item_titles), popular, shares, settings.text, sc.k, sc)
    # What each user has to score from; a model that reads no profile leaves the profile-only ones to the fallback.
    counts = {name: int((out.kind == k).sum()) for name, k in (("history", MODEL), ("profile only", COLD_TEXT), ("neither", POPULAR))}
    log.info("%s: %d items, %d allowed, %d known only by text; users: %d (%s)", rec.name, snap.n_items, int(allowed.sum()),
             int(out.text_only.sum()), n, ", ".join(f"{k} {v}" for k, v in counts.items()))
    return out


def assemble(rec: Recommender, history: History, asof: np.ndarray, profile_texts: list[str], allowed: np.ndarray,
             titles: list[str], popular: np.ndarray, shares: np.ndarray, text: TextSettings, k: int,
             sc: ScoringSettings) -> Scoring:
    """The engines' :class:`Scoring` for these users, the one rule for the nightly job and for
    requests to a registered version: a user with history is scored by the model from it (MODEL),
    a user with only a profile from the profile's text (COLD_TEXT), anyone else by the fallback
    (POPULAR); items the LLM never saw in training are scored from their text alone."""
    n = len(profile_texts)
    kind = kinds(history, np.arange(n), profile_texts)
    model = getattr(rec, "base", rec)
    text_only = ~model.known_.cpu().numpy() if isinstance(model, LlmRecommender) else np.zeros(len(allowed), bool)
    return Scoring(
        rec=rec, history=history, asof=asof, kind=kind, vectors=rec.item_vectors(), allowed=allowed, text_only=text_only,
        titles=titles, popular=popular, popular_scores=shares, text=text, k=k, audience_k=sc.audience_k,
        reason_history=sc.reason_history, user_block=sc.user_block, item_block=sc.item_block,
        device=str(getattr(rec, "device", "cpu")),
    )
