"""AUC, per-user AUC and log loss against hand-computed values and their undefined cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from llmrec_core.metrics import auc, log_loss, user_auc


def test_auc_hand_computed():
    # pos 0.35 beats neg 0.1, loses to neg 0.4; pos 0.8 beats both: 3 of 4 pairs
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_auc_tie_counts_half():
    assert auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)


def test_auc_one_class_or_empty_is_nan():
    assert math.isnan(auc([1, 1, 1], [0.2, 0.5, 0.9]))
    assert math.isnan(auc([0, 0], [0.2, 0.5]))
    assert math.isnan(auc([], []))


def test_auc_rejects_bad_labels_and_lengths():
    with pytest.raises(ValueError):
        auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        auc([0, 1], [0.1])


def test_user_auc_ignores_single_class_users():
    rows = [
        # (user, label, score), interleaved so grouping is not helped by order
        ("u1", 0, 0.1),
        ("u2", 1, 0.2),
        ("u3", 1, 0.7),  # u3: positives only -> ignored
        ("u1", 0, 0.4),
        ("u4", 0, 0.3),  # u4: one negative -> ignored
        ("u1", 1, 0.35),
        ("u2", 0, 0.9),
        ("u1", 1, 0.8),
        ("u3", 1, 0.1),
    ]
    users, labels, scores = zip(*rows)
    # u1: 3 of 4 pairs ordered right = 0.75; u2: its positive scores below its negative = 0.0
    # uAUC = (0.75 + 0.0) / 2, each user weighted equally
    assert user_auc(users, labels, scores) == pytest.approx(0.375)


def test_user_auc_ties_within_and_across_users():
    users = [1, 1, 1, 2, 2]
    labels = [0, 1, 1, 0, 1]
    scores = [0.5, 0.5, 0.9, 0.9, 0.5]
    # user 1: pairs (0.5 vs 0.5) tie = 0.5, (0.9 vs 0.5) = 1 -> 1.5 / 2 = 0.75
    # user 2: positive 0.5 below negative 0.9 -> 0.0; uAUC = (0.75 + 0.0) / 2
    assert user_auc(users, labels, scores) == pytest.approx(0.375)


def test_user_auc_no_qualifying_user_is_nan():
    assert math.isnan(user_auc(["a", "a", "b"], [1, 1, 0], [0.1, 0.2, 0.3]))
    assert math.isnan(user_auc([], [], []))


def test_user_auc_matches_sklearn_per_user():
    rng = np.random.default_rng(3)
    n = 150  # about 4 rows a user, so some users end up with one class
    users = rng.integers(0, 40, n)
    labels = (rng.random(n) < 0.3).astype(int)
    scores = np.round(rng.random(n), 1)  # coarse rounding forces many ties
    expected = []
    for u in np.unique(users):
        mask = users == u
        if labels[mask].min() != labels[mask].max():
            expected.append(roc_auc_score(labels[mask], scores[mask]))
    assert len(expected) < len(np.unique(users))  # some users are single-class
    assert user_auc(users, labels, scores) == pytest.approx(float(np.mean(expected)))


def test_log_loss_hand_computed():
    # -(ln 0.8 + ln(1 - 0.4)) / 2 = (0.2231435513 + 0.5108256238) / 2
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(0.3669845875)


def test_log_loss_clips_confident_mistake():
    # p = 0 for a positive is clipped to 1e-7: -ln(1e-7)
    assert log_loss([1], [0.0]) == pytest.approx(16.1180956510)
    assert log_loss([0], [1.0], eps=1e-3) == pytest.approx(6.9077552790)  # -ln(1e-3)


def test_log_loss_single_class_and_empty():
    assert log_loss([1, 1], [0.5, 0.5]) == pytest.approx(0.6931471806)  # ln 2
    assert math.isnan(log_loss([], []))


def test_ece_and_reliability():
    from llmrec_core.metrics import ece, reliability

    rng = np.random.default_rng(0)
    p = rng.uniform(size=20000)
    y = (rng.uniform(size=20000) < p).astype(int)
    assert ece(y, p) < 0.02  # calibrated by construction
    assert abs(ece(y, np.clip(p + 0.2, 0, 1)) - 0.2) < 0.05  # over-confident by about 0.2
    table = reliability([0, 1, 1, 0], [0.05, 0.95, 0.9, 0.1], bins=10)
    assert [(round(a, 3), b, c) for a, b, c in table] == [(0.05, 0.0, 1), (0.1, 0.0, 1), (0.925, 1.0, 2)]


def test_f1_is_the_harmonic_mean_of_precision_and_recall():
    from llmrec_core.metrics import f1

    assert f1([1, 2, 3, 4], {1, 9}, 4) == 2 * 0.25 * 0.5 / 0.75
    assert f1([5, 6], {1}, 2) == 0.0 and np.isnan(f1([1], set(), 1))
