"""Top-k ranking metrics against hand-computed values, cut-off and edge cases, and the LOO helper."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmrec_core.metrics import hit_rate, mrr, ndcg, precision, ranks_to_metrics, recall

RECS = ["a", "b", "c", "d", "e"]
PER_USER = (hit_rate, precision, recall, ndcg, mrr)


def test_two_hits_in_five():
    truth = {"b", "d"}  # hits at ranks 2 and 4
    assert hit_rate(RECS, truth, 5) == 1.0
    assert precision(RECS, truth, 5) == pytest.approx(0.4)  # 2 / 5
    assert recall(RECS, truth, 5) == pytest.approx(1.0)  # 2 / 2
    # (1/log2(3) + 1/log2(5)) / (1 + 1/log2(3)) = 1.0616063116 / 1.6309297536
    assert ndcg(RECS, truth, 5) == pytest.approx(0.6509209298)
    assert mrr(RECS, truth, 5) == pytest.approx(0.5)  # first hit at rank 2


def test_relevant_item_never_recommended():
    truth = {"b", "d", "x"}  # hits at ranks 2 and 4; "x" is missed
    assert recall(RECS, truth, 5) == pytest.approx(2 / 3)
    # IDCG over min(3, 5) = 3 ideal hits:
    # (1/log2(3) + 1/log2(5)) / (1 + 1/log2(3) + 1/log2(4)) = 1.0616063116 / 2.1309297536
    assert ndcg(RECS, truth, 5) == pytest.approx(0.4981892575)


def test_more_relevant_items_than_k():
    truth = {"a", "b", "c", "z"}
    # All 3 slots hit and the ideal list can hold only 3, so NDCG is 1 while recall is 3 / 4.
    assert ndcg(RECS, truth, 3) == pytest.approx(1.0)
    assert recall(RECS, truth, 3) == pytest.approx(0.75)
    assert precision(RECS, truth, 3) == pytest.approx(1.0)


def test_cutoff_ignores_later_hits():
    truth = {"d"}  # rank 4
    for metric in PER_USER:
        assert metric(RECS, truth, 3) == 0.0, metric.__name__
    assert hit_rate(RECS, truth, 4) == 1.0
    assert mrr(RECS, truth, 4) == pytest.approx(0.25)  # 1 / 4
    assert ndcg(RECS, truth, 4) == pytest.approx(0.4306765581)  # 1/log2(5) / 1


def test_recs_shorter_than_k():
    recs, truth = ["a", "b"], {"b"}  # one hit at rank 2, k = 5
    assert precision(recs, truth, 5) == pytest.approx(0.2)  # 1 / k, not 1 / len(recs)
    assert recall(recs, truth, 5) == pytest.approx(1.0)
    assert ndcg(recs, truth, 5) == pytest.approx(0.6309297536)  # 1/log2(3) / 1
    assert mrr(recs, truth, 5) == pytest.approx(0.5)


def test_empty_recs_score_zero():
    for metric in PER_USER:
        assert metric([], {"a"}, 5) == 0.0, metric.__name__


def test_empty_truth_is_nan():
    for metric in PER_USER:
        assert math.isnan(metric(RECS, set(), 5)), metric.__name__
        assert math.isnan(metric(RECS, [], 5)), metric.__name__


def test_repeated_item_counts_once():
    recs, truth = ["b", "b", "c"], {"b"}
    assert precision(recs, truth, 3) == pytest.approx(1 / 3)
    assert recall(recs, truth, 3) == pytest.approx(1.0)
    assert ndcg(recs, truth, 3) == pytest.approx(1.0)


def test_bad_k_raises():
    with pytest.raises(ValueError):
        precision(RECS, {"a"}, 0)
    with pytest.raises(ValueError):
        ranks_to_metrics(np.array([1]), 0)


def test_ranks_to_metrics_hand_computed():
    out = ranks_to_metrics(np.array([1, 3, 12]), 10)  # rank 12 is past the cut-off
    assert out["hr"] == pytest.approx(2 / 3)
    assert out["ndcg"] == pytest.approx(0.5)  # (1/log2(2) + 1/log2(4) + 0) / 3 = 1.5 / 3
    assert out["mrr"] == pytest.approx(4 / 9)  # (1 + 1/3 + 0) / 3


def test_ranks_to_metrics_empty_is_nan():
    out = ranks_to_metrics(np.array([], dtype=np.int64), 10)
    assert set(out) == {"hr", "ndcg", "mrr"}
    assert all(math.isnan(v) for v in out.values())


def test_ranks_to_metrics_rejects_zero_rank():
    with pytest.raises(ValueError):
        ranks_to_metrics(np.array([0, 2]), 10)


def test_ranks_to_metrics_agrees_with_per_user_functions():
    rng = np.random.default_rng(7)
    n_users, n_items, k = 60, 25, 10
    ranks, per_user = [], {"hr": [], "ndcg": [], "mrr": []}
    for _ in range(n_users):
        recs = list(rng.permutation(n_items))
        held_out = int(rng.integers(n_items))
        ranks.append(recs.index(held_out) + 1)
        per_user["hr"].append(hit_rate(recs, {held_out}, k))
        per_user["ndcg"].append(ndcg(recs, {held_out}, k))
        per_user["mrr"].append(mrr(recs, {held_out}, k))
    ranks = np.array(ranks)
    assert (ranks > k).any() and (ranks <= k).any()  # both branches exercised
    out = ranks_to_metrics(ranks, k)
    for name, values in per_user.items():
        assert out[name] == pytest.approx(float(np.mean(values))), name
