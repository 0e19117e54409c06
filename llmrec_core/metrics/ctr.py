"""Pointwise click-through metrics over scored (user, item, label) rows: AUC, per-user AUC, log loss.

Labels are 0/1 (bools are accepted). Every function returns NaN where the metric is undefined
(empty input, or a single class for AUC) rather than raising, so an evaluation over many slices
can report the gap instead of stopping.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

NAN = float("nan")


def _binary_labels(labels: Sequence | np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    return y.astype(np.int64)


def _same_length(*arrays: np.ndarray) -> None:
    if len({a.shape[0] for a in arrays}) > 1:
        raise ValueError(f"inputs differ in length: {[a.shape[0] for a in arrays]}")


def auc(labels: Sequence | np.ndarray, scores: Sequence | np.ndarray) -> float:
    """ROC AUC of ``scores`` against ``labels``; NaN when empty or only one class is present."""
    y = _binary_labels(labels)
    s = np.asarray(scores, dtype=np.float64)
    _same_length(y, s)
    # sklearn raises on a single class; here that is an expected slice (e.g. a day with no
    # clicks), so it maps to NaN.
    if y.size == 0 or y.min() == y.max():
        return NAN
    return float(skm.roc_auc_score(y, s))


def user_auc(
    user_ids: Sequence | np.ndarray, labels: Sequence | np.ndarray, scores: Sequence | np.ndarray
) -> float:
    """Per-user AUC (uAUC): the unweighted mean of each user's AUC over users with both classes.

    Each user's AUC is the Mann-Whitney statistic with mid-ranks for tied scores, which equals
    sklearn's ``roc_auc_score`` (ties count one half). All users are ranked in one sort.
    """
    y = _binary_labels(labels)
    s = np.asarray(scores, dtype=np.float64)
    users = np.asarray(user_ids)
    _same_length(users, y, s)
    if y.size == 0:
        return NAN
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")

    _, group = np.unique(users, return_inverse=True)
    group = group.reshape(-1)
    n = np.bincount(group)
    n_pos = np.bincount(group, weights=y).astype(np.int64)
    n_neg = n - n_pos

    # Sort by user, then score, so each user's rows are contiguous and ascending.
    order = np.lexsort((s, group))
    g, sc, lab = group[order], s[order], y[order]
    starts = np.concatenate(([0], np.cumsum(n)[:-1]))
    rank = np.arange(y.size) - starts[g] + 1.0
    # Rows tied on (user, score) share the mean of their ranks, which scores a tie as one half.
    new_tie = np.ones(y.size, dtype=bool)
    new_tie[1:] = (g[1:] != g[:-1]) | (sc[1:] != sc[:-1])
    tie = np.cumsum(new_tie) - 1
    mid_rank = (np.bincount(tie, weights=rank) / np.bincount(tie))[tie]
    pos_rank_sum = np.bincount(g, weights=mid_rank * lab, minlength=n.size)

    ok = (n_pos > 0) & (n_neg > 0)
    if not ok.any():
        return NAN
    per_user = (pos_rank_sum[ok] - n_pos[ok] * (n_pos[ok] + 1) / 2.0) / (n_pos[ok] * n_neg[ok])
    return float(per_user.mean())


def log_loss(labels: Sequence | np.ndarray, probs: Sequence | np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy, with ``probs`` clipped to [eps, 1 - eps]; NaN when empty."""
    y = _binary_labels(labels)
    p = np.asarray(probs, dtype=np.float64)
    _same_length(y, p)
    if y.size == 0:
        return NAN
    # Clipping bounds the cost of one confident mistake, so a single p = 0 for a click
    # does not make the whole evaluation infinite.
    p = np.clip(p, eps, 1.0 - eps)
    # labels=[0, 1] lets a slice with only one class still be scored.
    return float(skm.log_loss(y, p, labels=[0, 1]))


def reliability(labels: Sequence | np.ndarray, probs: Sequence | np.ndarray, bins: int = 15) -> list[tuple[float, float, int]]:
    """Equal-width bins of predicted probability: (mean prediction, share of positives, pairs),
    for bins that hold any pair."""
    y = _binary_labels(labels)
    p = np.asarray(probs, dtype=np.float64)
    _same_length(y, p)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            out.append((float(p[inside].mean()), float(y[inside].mean()), int(inside.sum())))
    return out


def ece(labels: Sequence | np.ndarray, probs: Sequence | np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: the pair-weighted mean gap between predicted probability and
    the observed share of positives over :func:`reliability`'s bins; NaN when empty."""
    table = reliability(labels, probs, bins)
    n = sum(c for _, _, c in table)
    return float(sum(c * abs(pred - seen) for pred, seen, c in table) / n) if n else NAN
