"""The evaluation harness: one recommender, one protocol split, one dict of metrics.

Full ranking over the whole catalogue; the user's already-seen items are excluded; an item a
model cannot score (-inf) is never "recommended" and ranks last. Top-K lists come from the
recommender's own ``recommend`` and, for a user it can rank nothing for, the popularity
fallback (the rule the nightly scoring job publishes with), so a number here is a number about
the served table. Ranks of single targets (``loo``) use ``score`` with
ties ranked pessimistically (a target tied with others is placed after them), so a constant
score earns nothing.
Metric names are the same for every model, so MLflow's compare view lines them up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from llmrec_core import metrics
from llmrec_core.data.interactions import Interactions
from llmrec_core.data.protocols import EvalSplit
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.recommenders import returning
from llmrec_core.recommenders.base import History, Recommender
from llmrec_core.scoring.engine import kinds, ranked
from llmrec_core.scoring.inputs import popular_items
from llmrec_core.settings import ModelSettings, ScoringSettings

log = logging.getLogger(__name__)
# The days of positive events the popularity fallback counts by default (``scoring.popular_days``):
# what a user the model cannot rank anything for is served. The training job, the gate and the
# comparison pass the configured value.
FALLBACK_DAYS = ScoringSettings.model_fields["popular_days"].default
RETURN_HORIZON = ModelSettings.model_fields["return_horizon_days"].default  # the peer of the default audience
# Labels that pull an item's share of positives towards the overall share (chosen on the
# MovieLens-100K validation window among 2, 5, 10 and 20; benchmarks/RESULTS.md, "What the
# click probability knows").
ITEM_SHARE_PRIOR = 2
BLOCK = 512


def _blocks(users: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(users), BLOCK):
        yield start, users[start : start + BLOCK]


def masked_scores(rec: Recommender, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
    """Scores with each user's history items excluded, as ``recommend`` excludes them: a
    re-consumed target ranks last rather than being the one seen item left in play."""
    return history.mask_seen(rec.score(users, history, asof).astype(np.float32, copy=True), users)


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based pessimistic rank of each row's target among all columns."""
    s = scores[np.arange(len(targets)), targets][:, None]
    ranks = (scores > s).sum(1) + (scores == s).sum(1)
    return np.where(np.isfinite(s[:, 0]), ranks, scores.shape[1]).astype(np.int64)


def top_k_lists(rec: Recommender, split: EvalSplit, snap: Snapshot, k: int,
                allowed: np.ndarray | None = None, *, fallback_days: int = FALLBACK_DAYS) -> list[np.ndarray]:
    """Each evaluated user's top-k items, best first, exactly what the nightly scoring job
    publishes for that user (``scoring.engine.ranked``): ``rec.recommend`` with the user's
    history excluded, and the popularity fallback as of the user's prediction time (positive
    events of the ``fallback_days`` before it, ``scoring.popular_days``) for a user with neither
    history nor profile, or one the model can rank nothing for (a baseline that reads no
    profile, ALS for a user it never saw)."""
    history = History.of(split.history, snap.n_users)
    kind = kinds(history, split.users, snap.profile_texts)
    mask = np.ones(snap.n_items, bool) if allowed is None else allowed
    items = np.full((len(split.users), k), -1, np.int64)
    for t in np.unique(split.asof):  # one cut-off for the temporal protocol
        rows = np.flatnonzero(split.asof == t)
        popular, shares = popular_items(split.history, int(t), snap.n_items, mask, fallback_days)
        _, items[rows], _ = ranked(rec, split.users[rows], kind[rows], history, split.asof[rows], k, allowed, popular, shares)
    return [row[row >= 0] for row in items]


def loo_ranks(rec: Recommender, split: EvalSplit, snap: Snapshot) -> np.ndarray:
    """Each evaluated user's pessimistic rank of its single target, history excluded."""
    history = History.of(split.history, snap.n_users)
    targets = np.array([t[0] for t in split.truth], dtype=np.int64)
    return np.concatenate([
        target_ranks(masked_scores(rec, users, history, split.asof[s : s + len(users)]), targets[s : s + len(users)])
        for s, users in _blocks(split.users)
    ]) if len(split.users) else np.zeros(0, np.int64)


def evaluate_loo(rec: Recommender, split: EvalSplit, snap: Snapshot, ks: list[int]) -> dict[str, float]:
    if not len(split.users):
        return {f"{name}_{k}": float("nan") for k in ks for name in ("hr", "ndcg", "mrr")}
    ranks = loo_ranks(rec, split, snap)
    out: dict[str, float] = {}
    for k in ks:
        for name, value in metrics.ranks_to_metrics(ranks, k).items():
            out[f"{name}_{k}"] = value
    return out


def evaluate_temporal(rec: Recommender, split: EvalSplit, snap: Snapshot, ks: list[int],
                      item_vectors: np.ndarray | None = None, *, fallback_days: int = FALLBACK_DAYS) -> dict[str, float]:
    """Top-K against the window's new positives; ``item_vectors`` (for intra-list diversity)
    are the language model's item text vectors, the same for every model."""
    kmax = max(*ks, 10)  # the beyond-accuracy metrics below are @10
    lists = top_k_lists(rec, split, snap, kmax, fallback_days=fallback_days)
    train_pop = np.bincount(split.train.item, minlength=snap.n_items)
    warm_item = train_pop > 0
    warm_user = np.bincount(split.train.user, minlength=snap.n_users)[split.users] > 0
    out: dict[str, float] = {}
    for k in ks:
        recs = [lst[:k].tolist() for lst in lists]
        truth = [set(t.tolist()) for t in split.truth]
        per_user = {
            "recall": [metrics.recall(r, t, k) for r, t in zip(recs, truth, strict=True)],
            "ndcg": [metrics.ndcg(r, t, k) for r, t in zip(recs, truth, strict=True)],
            "precision": [metrics.precision(r, t, k) for r, t in zip(recs, truth, strict=True)],
            "f1": [metrics.f1(r, t, k) for r, t in zip(recs, truth, strict=True)],
            "hr": [metrics.hit_rate(r, t, k) for r, t in zip(recs, truth, strict=True)],
        }
        for name, values in per_user.items():
            v = np.array(values)
            out[f"{name}_{k}"] = float(np.nanmean(v)) if len(v) else float("nan")
            if name in ("recall", "ndcg"):
                # Users with history before the cut-off, and those without, are different problems.
                out[f"{name}_{k}_warm_users"] = float(np.nanmean(v[warm_user])) if warm_user.any() else float("nan")
                out[f"{name}_{k}_cold_users"] = float(np.nanmean(v[~warm_user])) if (~warm_user).any() else float("nan")
        for part, keep in (("warm_items", warm_item), ("cold_items", ~warm_item)):
            vals = [metrics.recall(r, {i for i in t if keep[i]}, k) for r, t in zip(recs, truth, strict=True)]
            vals = [v for v in vals if not np.isnan(v)]
            out[f"recall_{k}_{part}"] = float(np.mean(vals)) if vals else float("nan")
    recs = [lst[:10].tolist() for lst in lists]
    pop = dict(enumerate(train_pop.tolist()))
    out["coverage_10"] = metrics.catalogue_coverage(recs, snap.n_items)
    out["novelty_10"] = metrics.novelty(recs, pop, max(1, len(np.unique(split.train.user))))
    if item_vectors is not None:
        out["diversity_10"] = metrics.intra_list_diversity(recs, dict(enumerate(item_vectors)))
    out["popularity_bias_10"] = metrics.popularity_bias(recs, pop)
    out["gini_10"] = metrics.gini_exposure(recs, snap.n_items)
    return out


def _cold_user_recalls(rec: Recommender, split: EvalSplit, history: History, n_items: int, ks: list[int],
                       rows: np.ndarray) -> dict[int, np.ndarray]:
    """Recall@K of each of ``rows`` (of a ``cold_items`` split) over its future cold items,
    ranked among the cold items, history excluded: K -> one value per row."""
    cold = np.zeros(n_items, bool)
    cold[split.items] = True
    position = {int(item): j for j, item in enumerate(split.items)}
    _, items = rec.recommend(split.users[rows], history, split.asof[rows], max(ks), allowed=cold)
    lists = [[position[int(i)] for i in row if i >= 0] for row in items]
    return {k: np.array([metrics.recall(lst[:k], {position[int(i)] for i in split.truth[u]}, k)
                         for lst, u in zip(lists, rows, strict=True)]) for k in ks}


def warm_cold_rows(split: EvalSplit, snap: Snapshot) -> np.ndarray:
    """The rows of a ``cold_items`` split whose user has training events and future cold items:
    the users ``cold_recall_K_warm_users`` is over."""
    events = np.bincount(split.train.user, minlength=snap.n_users)
    return np.array([u for u, t in enumerate(split.truth) if len(t) and events[split.users[u]] > 0], np.int64)


def warm_cold_recall(rec: Recommender, split: EvalSplit, snap: Snapshot, k: int, rows: np.ndarray,
                     history: History) -> float:
    """``cold_recall_K_warm_users`` alone (no audience) over ``rows`` (:func:`warm_cold_rows`),
    ``history`` the split's: the figure ``model.cold_taste_weight`` is chosen by
    (``tuning.choose_cold_taste``)."""
    return float(_cold_user_recalls(rec, split, history, snap.n_items, [k], rows)[k].mean()) if len(rows) else float("nan")


def _audiences(rec: Recommender, split: EvalSplit, history: History, k: int) -> list[np.ndarray]:
    """Each of the split's cold items' top-``k`` users, from ``rec.audience``."""
    _, rows = rec.audience(split.users, history, split.asof, k)
    return [row[row >= 0] for row in rows[split.items]]


def _item_recall(lists, split: EvalSplit, k: int) -> float:
    """The mean recall@``k`` of each cold item's list of users (``lists``, one per item of the
    split) against the users who engaged with it in the window."""
    vals = [metrics.recall(lst[:k].tolist(), set(t.tolist()), k) for lst, t in zip(lists, split.item_truth, strict=True)]
    return float(np.mean(vals)) if vals else float("nan")


def audience_recall(rec: Recommender, split: EvalSplit, k: int, history: History) -> float:
    """``cold_audience_recall_K`` alone (no user side) of a ``cold_items`` split, ``history`` the
    split's: the figure ``model.audience`` is chosen by (``tuning.choose_audience``)."""
    return _item_recall(_audiences(rec, split, history, k), split, k)


def evaluate_cold_items(rec: Recommender, split: EvalSplit, snap: Snapshot, ks: list[int]) -> dict[str, float]:
    """User side (``cold_recall_K``): each user's future cold items ranked among the cold
    items, also over users with and without training events apart (``_warm_users``,
    ``_cold_users``): a user's taste can only help the former. Item side
    (``cold_audience_recall_K``): each cold item's future users among all users.
    ``cold_random_recall_K`` is what a random order would score on the user side."""
    history = History.of(split.history, snap.n_users)
    rows = np.array([u for u, t in enumerate(split.truth) if len(t)], np.int64)
    recalls = _cold_user_recalls(rec, split, history, snap.n_items, ks, rows)
    audience = _audiences(rec, split, history, max(ks))
    # The item side's simple peers, the same users for every item: the most active (most training
    # events), and those most likely to come back (the language model's return rates alone, most
    # active first among equals): what the taste for the item (click or share) adds to an audience is the gap to the latter.
    events = np.bincount(split.train.user, minlength=snap.n_users)
    active = np.lexsort((np.arange(snap.n_users), -events))
    asof = int(split.asof.max())
    rates = returning.fit(split.train, snap.n_users, asof, RETURN_HORIZON)
    last = history.last_ts(np.arange(snap.n_users))  # where each user stands at the cut-off, as ``audience`` reads it
    coming = np.lexsort((np.arange(snap.n_users), -events, -rates.log_rate(last, np.full(snap.n_users, asof))))
    warm_user = events[split.users[rows]] > 0

    out = {}
    for k in ks:
        vals = recalls[k]
        out[f"cold_recall_{k}"] = float(np.mean(vals)) if len(vals) else float("nan")
        for part, keep in (("warm_users", warm_user), ("cold_users", ~warm_user)):
            out[f"cold_recall_{k}_{part}"] = float(np.mean(vals[keep])) if keep.any() else float("nan")
        out[f"cold_random_recall_{k}"] = min(1.0, k / len(split.items)) if len(split.items) else float("nan")
        same = len(split.item_truth)
        out[f"cold_active_audience_recall_{k}"] = _item_recall([active] * same, split, k)
        out[f"cold_returning_audience_recall_{k}"] = _item_recall([coming] * same, split, k)
        out[f"cold_audience_recall_{k}"] = _item_recall(audience, split, k)
    return out


def pair_scores(rec: Recommender, split: EvalSplit, snap: Snapshot) -> np.ndarray:
    users, items, _ = split.pairs
    history = History.of(split.history, snap.n_users)
    out = np.zeros(len(users), np.float32)
    for s, block in _blocks(split.users):
        scores = rec.score(block, history, split.asof[s : s + len(block)])
        rows = np.searchsorted(block, users)
        inside = (rows < len(block)) & (block[np.minimum(rows, len(block) - 1)] == users)
        out[inside] = scores[rows[inside], items[inside]]
    return out


def per_user_ndcg(rec: Recommender, split: EvalSplit, snap: Snapshot, k: int, *, fallback_days: int = FALLBACK_DAYS) -> np.ndarray:
    """NDCG@k of each evaluated user (``loo``/``temporal``), for paired comparisons of models."""
    if split.name in ("loo", "loo_valid"):
        ranks = loo_ranks(rec, split, snap)
        return metrics.ndcg_of_ranks(ranks, k)
    lists = top_k_lists(rec, split, snap, k, fallback_days=fallback_days)
    return np.array([metrics.ndcg(lst.tolist(), set(t.tolist()), k) for lst, t in zip(lists, split.truth, strict=True)])


def evaluate_ctr(rec: Recommender, split: EvalSplit, snap: Snapshot) -> dict[str, float]:
    users, items, labels = split.pairs
    scores = pair_scores(rec, split, snap)
    finite = np.isfinite(scores)
    # Unscorable pairs rank below every scored one.
    floor = scores[finite].min() - 1.0 if finite.any() else 0.0
    ranked = np.where(finite, scores, floor)
    out = {"auc": metrics.auc(labels, ranked), "user_auc": metrics.user_auc(users, labels, ranked)}
    if rec.probabilistic:
        probs = 1.0 / (1.0 + np.exp(-ranked.astype(np.float64)))
        out["log_loss"], out["ece"] = metrics.log_loss(labels, probs), metrics.ece(labels, probs)
    # The simple peers on the same pairs, the same for every model: the best constant (the
    # window's own share of positives), whose log loss a probability must beat; and each item's
    # share of positive labels in training, which knows nothing of the user.
    share = item_positive_share(split.train, snap.n_items)[items]
    out["base_rate_log_loss"] = metrics.log_loss(labels, np.full(len(labels), labels.mean() if len(labels) else 0.5))
    out["item_share_auc"], out["item_share_log_loss"] = metrics.auc(labels, share), metrics.log_loss(labels, share)
    return out


def item_positive_share(train: Interactions, n_items: int) -> np.ndarray:
    """Each item's share of positive labels among its labelled training events, pulled towards
    the share over all items by ``ITEM_SHARE_PRIOR`` labels (an item without any: that share)."""
    labelled = train.label >= 0
    items, positive = train.item[labelled], (train.label[labelled] == 1).astype(np.float64)
    overall = float(positive.mean()) if len(positive) else 0.5
    hits = np.bincount(items, positive, minlength=n_items)
    return (hits + ITEM_SHARE_PRIOR * overall) / (np.bincount(items, minlength=n_items) + ITEM_SHARE_PRIOR)


def calibrate(rec: Recommender, split: EvalSplit, snap: Snapshot) -> tuple[float, float]:
    """Platt scaling on a labelled window: the (a, c) that make ``sigmoid(a * score + c)`` the
    best log-loss fit of the labels (a > 0, so no ranking changes). Fitted on raw scores."""
    from scipy.optimize import minimize

    _, _, labels = split.pairs
    saved = getattr(rec, "calibration", None)
    if saved is not None:
        rec.calibration = (1.0, 0.0)  # fit on the raw logit, not on an earlier calibration
    try:
        scores = pair_scores(rec, split, snap).astype(np.float64)
    finally:
        if saved is not None:
            rec.calibration = saved
    keep = np.isfinite(scores)
    x, y = scores[keep], labels[keep].astype(np.float64)
    if len(x) < 2 or y.min() == y.max():
        return 1.0, 0.0

    def loss(theta):
        z = theta[0] * x + theta[1]
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    fit = minimize(loss, np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(1e-3, None), (None, None)])
    return float(fit.x[0]), float(fit.x[1])


def evaluate(rec: Recommender, split: EvalSplit, snap: Snapshot, ks: list[int],
             item_vectors: np.ndarray | None = None, *, fallback_days: int = FALLBACK_DAYS) -> dict[str, float]:
    """One recommender on one split: the split's protocol's metrics. ``fallback_days`` is the
    served fallback's ``scoring.popular_days`` (the lists of users the model does not rank for)."""
    if split.name in ("loo", "loo_valid"):
        out = evaluate_loo(rec, split, snap, ks)
    elif split.name == "temporal":
        out = evaluate_temporal(rec, split, snap, ks, item_vectors, fallback_days=fallback_days)
    elif split.name == "cold_items":
        out = evaluate_cold_items(rec, split, snap, ks)
    elif split.name == "ctr":
        out = evaluate_ctr(rec, split, snap)
    else:
        raise ValueError(f"unknown protocol {split.name!r}")
    log.info("%s on %s: %s", rec.name, split.name, {k: round(v, 4) for k, v in out.items()})
    return out
