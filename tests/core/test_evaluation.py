"""The evaluation harness on hand-made splits, with a recommender that returns a fixed score matrix."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from llmrec_core.data.interactions import Interactions, KindVocab
from llmrec_core.data.protocols import DAY, cold_items, ctr, loo, temporal
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.evaluation import (
    FALLBACK_DAYS,
    ITEM_SHARE_PRIOR,
    evaluate,
    evaluate_cold_items,
    evaluate_ctr,
    evaluate_loo,
    evaluate_temporal,
    target_ranks,
    top_k_lists,
)
from llmrec_core.recommenders.base import Recommender
from llmrec_core.settings import FeedbackSettings
from tests.toy import interactions as make

NEG = -np.inf
C = 10 * DAY


class Fixed(Recommender):
    """Scores every user with its row of a given [n_users, n_items] matrix."""

    name = "fixed"

    def __init__(self, scores, probabilistic: bool = False):
        self.scores = np.asarray(scores, dtype=np.float32)
        self.probabilistic = probabilistic

    def fit(self, snapshot, train):
        return self

    def score(self, users, history, asof):
        return self.scores[users].copy()




def snapshot(n_users: int, n_items: int, events: Interactions, profiles: list[str] | None = None) -> Snapshot:
    return Snapshot(
        ds=dt.date(2024, 1, 1), item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        item_titles=[f"t{i}" for i in range(n_items)], item_texts=[f"t{i}" for i in range(n_items)],
        item_available=np.ones(n_items, bool), user_ids=np.array([f"u{u}" for u in range(n_users)], dtype=object),
        profile_texts=profiles or [""] * n_users, events=events, kinds=KindVocab.from_feedback(FeedbackSettings()),
    )


# --- ranks and top-k ----------------------------------------------------------------------------

def test_target_ranks():
    scores = np.array([
        [0.5, 0.9, 0.5, 0.5, 0.1],  # target 0 ties with two others, one is higher: 1 + 3 = 4
        [0.2, NEG, 0.3, 0.1, NEG],  # target cannot be scored: last
        [0.1, 0.2, 0.9, 0.3, 0.0],  # unique best: 1
        [1.0, 1.0, 1.0, 1.0, 1.0],  # constant scores earn nothing: 5
    ], dtype=np.float32)
    assert target_ranks(scores, np.array([0, 1, 2, 4])).tolist() == [4, 5, 1, 5]


# --- leave-last-out -----------------------------------------------------------------------------

LOO_ROWS = [(0, 0, 1, 1), (0, 1, 1, 2), (0, 2, 1, 3),  # valid target 1, test target 2
            (1, 3, 1, 1), (1, 4, 1, 2), (1, 0, 1, 3)]  # valid target 4, test target 0
LOO_SCORES = [
    [9.0, 8.0, 5.0, 6.0, 1.0],  # history items 0, 1 score highest; target 2 is behind only item 3
    [2.0, 0.0, 1.0, 9.0, 9.0],  # history items 3, 4 score highest; target 0 is then the best
]


def test_evaluate_loo_excludes_history():
    events = make(LOO_ROWS)
    valid, test = loo(events, 2)
    out = evaluate_loo(Fixed(LOO_SCORES), test, snapshot(2, 5, events), [1, 2])
    # Ranks after masking the history: user 0 -> 2, user 1 -> 1 (4 and 3 without the mask).
    assert out["hr_1"] == pytest.approx(0.5)
    assert out["ndcg_1"] == pytest.approx(0.5)
    assert out["mrr_1"] == pytest.approx(0.5)
    assert out["hr_2"] == pytest.approx(1.0)
    assert out["ndcg_2"] == pytest.approx((1 / math.log2(3) + 1) / 2)  # 0.8154648768
    assert out["mrr_2"] == pytest.approx(0.75)
    assert set(out) == {"hr_1", "ndcg_1", "mrr_1", "hr_2", "ndcg_2", "mrr_2"}


def test_evaluate_loo_validation_masks_only_train():
    events = make(LOO_ROWS)
    valid, _ = loo(events, 2)
    # Validation history = items 0 (user 0) and 3 (user 1); targets 1 (8.0) and 4 (9.0) are then first.
    out = evaluate(Fixed(LOO_SCORES), valid, snapshot(2, 5, events), [1], np.eye(5))
    assert out == {"hr_1": 1.0, "ndcg_1": 1.0, "mrr_1": 1.0}


def test_evaluate_loo_unscorable_target_ranks_last():
    events = make(LOO_ROWS)
    _, test = loo(events, 2)
    scores = [[0.0, 0.0, NEG, 1.0, 0.5], [NEG, 0.0, 0.5, 0.0, 0.0]]  # both targets unscorable
    out = evaluate_loo(Fixed(scores), test, snapshot(2, 5, events), [5])
    assert out == {"hr_5": 1.0, "ndcg_5": pytest.approx(1 / math.log2(6)), "mrr_5": pytest.approx(0.2)}


# --- temporal -----------------------------------------------------------------------------------

def test_evaluate_temporal():
    events = make([
        (0, 0, 1, 1), (0, 1, 1, C + 1), (0, 2, 1, C + 2),  # warm user 0: truth {1, 2}
        (1, 3, 1, C + 1),  # cold user 1: truth {3}
        (2, 1, 1, 5),  # user 2 has only training data
    ])
    split = temporal(events, 3, C, 5)
    scores = [
        [10.0, 5.0, 1.0, 4.0, 3.0, 2.0],  # item 0 is history: ranking 1, 3, 4, 5, 2
        [0.0, 1.0, 2.0, 3.0, 4.0, NEG],  # ranking 4, 3, 2, 1, 0 (item 5 unscorable)
        [0.0] * 6,
    ]
    # User 1 has no history but a profile: the model scores them, as the scoring job would.
    out = evaluate_temporal(Fixed(scores), split, snapshot(3, 6, events, ["", "a profile", ""]), [1, 2], np.eye(6))
    assert out["recall_1"] == pytest.approx(0.25)  # (1/2 + 0) / 2
    assert out["ndcg_1"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert out["precision_1"] == pytest.approx(0.5)
    assert out["hr_1"] == pytest.approx(0.5)
    assert out["recall_2"] == pytest.approx(0.75)  # user 0 [1, 3]: 1/2; user 1 [4, 3]: 1
    # user 0: 1 / (1 + 1/log2 3); user 1: (1/log2 3) / 1
    assert out["ndcg_2"] == pytest.approx((1 / (1 + 1 / math.log2(3)) + 1 / math.log2(3)) / 2)  # 0.6220384732
    assert out["recall_1_warm_users"] == pytest.approx(0.5)
    assert out["recall_1_cold_users"] == pytest.approx(0.0)
    assert out["recall_2_warm_users"] == pytest.approx(0.5)
    assert out["recall_2_cold_users"] == pytest.approx(1.0)
    # Train items: 0 and 1. Warm-item truth: user 0 {1} only; cold-item truth: user 0 {2}, user 1 {3}.
    assert out["recall_2_warm_items"] == pytest.approx(1.0)
    assert out["recall_2_cold_items"] == pytest.approx(0.5)
    assert out["coverage_10"] == pytest.approx(1.0)  # user 0 shows 1-5, user 1 shows 0-4


def test_a_user_the_model_cannot_rank_anything_for_is_measured_on_the_served_fallback():
    """The lists are the served ones: a user with neither history nor profile (2), and one the
    model can rank nothing for (1, known by profile to a model that reads none; 4, with history),
    get the popularity fallback of the cut-off: items by positive events of the FALLBACK_DAYS
    before it, then of all time, then by index, without what the user has seen."""
    old, recent = C - (FALLBACK_DAYS + 2) * DAY, C - DAY
    events = make([
        (0, 4, 1, old), (3, 4, 1, old), (3, 2, 1, old), (0, 5, 1, old),  # all time: 4, then 2 and 5
        (3, 1, 1, recent), (0, 1, 1, recent), (3, 3, 1, recent), (3, 0, 0, recent),  # recent: 1, then 3; 0 a dislike
        (4, 3, 0, old),  # user 4 has seen item 3 (a dislike: no positive)
        (0, 2, 1, C + 1), (1, 1, 1, C + 1), (1, 2, 1, C + 2), (2, 4, 1, C + 1), (4, 5, 1, C + 1),
    ])
    split = temporal(events, 5, C, 5)
    assert split.users.tolist() == [0, 1, 2, 4]
    scores = [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [NEG] * 6, [9.0] * 6, [0.0] * 6, [NEG] * 6]
    snap = snapshot(5, 6, events, ["", "reads films", "", "", ""])
    lists = top_k_lists(Fixed(scores), split, snap, 4)
    fallback = [1, 3, 4, 2]  # recent positives, then all time (4 before 2 and 5 by count, 2 before 5 by index)
    # User 0 has seen 4, 5 and 1; user 4 has seen 3, which its fallback leaves out.
    assert [lst.tolist() for lst in lists] == [[3, 2, 0], fallback, fallback, [1, 4, 2, 5]]
    # A longer scoring.popular_days counts the older positives as recent too: 1 and 4 lead, then 2, 3 and 5.
    assert top_k_lists(Fixed(scores), split, snap, 4, fallback_days=FALLBACK_DAYS + 3)[1].tolist() == [1, 4, 2, 3]
    out = evaluate_temporal(Fixed(scores), split, snap, [2], np.eye(6))
    assert out["recall_2_cold_users"] == pytest.approx((1 / 2 + 0) / 2)  # user 1: {1, 2} gets [1, 3]; user 2: {4} gets [1, 3]


def test_evaluate_temporal_no_cold_users():
    events = make([(0, 0, 1, 1), (0, 1, 1, C + 1)])
    split = temporal(events, 1, C, 5)
    out = evaluate_temporal(Fixed([[0.0, 1.0, 2.0]]), split, snapshot(1, 3, events), [1], np.eye(3))
    assert out["recall_1"] == 0.0  # item 2 outranks the truth item 1
    assert out["recall_1_warm_users"] == 0.0
    assert math.isnan(out["recall_1_cold_users"])


# --- cold items ---------------------------------------------------------------------------------

COLD_ROWS = [(0, 0, 1, 1), (1, 1, 1, 2),  # items 0 and 1 are warm
             (0, 2, 1, C + 1), (2, 2, 1, C + 2), (3, 3, 1, C + 3), (1, 0, 1, C + 4)]


def test_evaluate_cold_items_ranks_users_per_item():
    events = make(COLD_ROWS)
    split = cold_items(events, 4, 4, C, 5)
    assert split.items.tolist() == [2, 3]
    scores = [[0.0, 0.0, 0.9, 0.1], [0.0, 0.0, 0.8, 0.2], [0.0, 0.0, 0.1, 0.3], [0.0, 0.0, 0.0, 0.4]]
    out = evaluate_cold_items(Fixed(scores), split, snapshot(4, 4, events), [1, 3])
    # Item side. Item 2 (users 0, 2): users ranked 0, 1, 2, 3 -> @1 1/2, @3 1. Item 3 (user 3): first.
    assert out["cold_audience_recall_1"] == pytest.approx(0.75)
    assert out["cold_audience_recall_3"] == pytest.approx(1.0)
    # User side, among cold items 2 and 3: user 0 wants 2 (0.9 > 0.1: hit), user 2 wants 2
    # (0.1 < 0.3: miss at 1), user 3 wants 3 (0.4 > 0.0: hit) -> @1 2/3; @3 both fit -> 1.
    assert out["cold_recall_1"] == pytest.approx(2 / 3)
    assert out["cold_recall_3"] == pytest.approx(1.0)
    assert out["cold_random_recall_1"] == pytest.approx(0.5)
    # Apart: user 0 has training events (hit); users 2 and 3 have none (one miss, one hit).
    assert out["cold_recall_1_warm_users"] == pytest.approx(1.0)
    assert out["cold_recall_1_cold_users"] == pytest.approx(0.5)


def test_evaluate_cold_items_unscorable_gets_zero():
    events = make(COLD_ROWS)
    split = cold_items(events, 4, 4, C, 5)
    scores = np.ones((4, 4), np.float32)
    scores[:, 2:] = NEG
    out = evaluate_cold_items(Fixed(scores), split, snapshot(4, 4, events), [1, 3])
    assert out["cold_recall_1"] == out["cold_recall_3"] == 0.0
    assert out["cold_audience_recall_1"] == out["cold_audience_recall_3"] == 0.0


def test_the_audience_peers_are_the_most_active_users_and_those_likely_to_come_back():
    # User 0: 100 events on the first day, gone since. User 1: one event a day until the cut-off
    # (day 60), and then the new item 2.
    cut = 60 * DAY
    rows = [(0, 0, 1, i * 600) for i in range(100)]
    rows += [(1, 1, 1, d * DAY + 3600) for d in range(60)] + [(1, 2, 1, cut + 1)]
    events = make(rows)
    split = cold_items(events, 2, 3, cut, 5)
    assert split.items.tolist() == [2]
    out = evaluate_cold_items(Fixed(np.zeros((2, 3))), split, snapshot(2, 3, events), [1])
    assert out["cold_active_audience_recall_1"] == 0.0  # user 0 has more events
    assert out["cold_returning_audience_recall_1"] == 1.0  # user 1 came back every day; user 0 never did


# --- ctr ----------------------------------------------------------------------------------------

CTR_ROWS = [(0, 0, 1, C + 1), (0, 1, 0, C + 2), (1, 2, 1, C + 1), (1, 3, 0, C + 2), (1, 1, -1, C + 3)]
CTR_SCORES = [[2.0, 1.0, 0.0, 0.0], [0.0, 9.0, 0.6, 0.5]]  # pair scores 2.0, 1.0, 0.6, 0.5


def test_evaluate_ctr_auc():
    events = make(CTR_ROWS)
    split = ctr(events, 2, C, 5)
    out = evaluate_ctr(Fixed(CTR_SCORES), split, snapshot(2, 4, events))
    # Positives {2.0, 0.6} vs negatives {1.0, 0.5}: 3 of 4 pairs ordered. Per user both are ordered.
    assert (out["auc"], out["user_auc"]) == (pytest.approx(0.75), pytest.approx(1.0))


def test_evaluate_ctr_unscorable_pairs_rank_last():
    events = make(CTR_ROWS)
    split = ctr(events, 2, C, 5)
    scores = [[2.0, 1.0, 0.0, 0.0], [0.0, 0.0, NEG, 0.5]]  # user 1's positive cannot be scored
    out = evaluate_ctr(Fixed(scores), split, snapshot(2, 4, events))
    # Positives {2.0, floor} vs negatives {1.0, 0.5}: 2 of 4; user 1 is fully inverted.
    assert (out["auc"], out["user_auc"]) == (pytest.approx(0.5), pytest.approx(0.5))


def test_evaluate_ctr_log_loss_only_when_probabilistic():
    events = make(CTR_ROWS)
    split = ctr(events, 2, C, 5)
    snap = snapshot(2, 4, events)
    assert "log_loss" not in evaluate_ctr(Fixed(CTR_SCORES), split, snap)
    out = evaluate_ctr(Fixed(CTR_SCORES, probabilistic=True), split, snap)

    def sig(x):
        return 1 / (1 + math.exp(-x))

    # labels 1, 0, 1, 0 on logits 2.0, 1.0, 0.6, 0.5
    expected = -(math.log(sig(2.0)) + math.log(1 - sig(1.0)) + math.log(sig(0.6)) + math.log(1 - sig(0.5))) / 4
    assert out["log_loss"] == pytest.approx(expected)  # 0.7129...
    assert out["auc"] == pytest.approx(0.75)


def test_the_click_peers_are_the_best_constant_and_each_items_share_of_positives():
    # Training labels: item 0 liked 3 of 3 times, item 1 disliked twice, item 2 only seen (-1), so
    # 3 of 5 labels are positive and each item's share is pulled towards 0.6 by the prior's labels.
    before = [(0, 0, 1, C - 30), (0, 0, 1, C - 20), (1, 0, 1, C - 10), (0, 1, 0, C - 9), (1, 1, 0, C - 8), (0, 2, -1, C - 7)]
    events = make(before + CTR_ROWS)
    split = ctr(events, 2, C, 5)
    out = evaluate_ctr(Fixed(CTR_SCORES, probabilistic=True), split, snapshot(2, 4, events))
    prior = ITEM_SHARE_PRIOR
    liked, disliked = (3 + prior * 0.6) / (3 + prior), (0 + prior * 0.6) / (2 + prior)
    # Pairs (item, label): (0, 1), (1, 0), (2, 1), (3, 0) -> shares liked, disliked, 0.6, 0.6.
    # Positives {liked, 0.6} against negatives {disliked, 0.6}: three ordered and one tie.
    assert out["item_share_auc"] == pytest.approx(3.5 / 4)
    assert out["item_share_log_loss"] == pytest.approx(-(math.log(liked) + math.log(1 - disliked) + math.log(0.6) + math.log(0.4)) / 4)
    assert out["base_rate_log_loss"] == pytest.approx(math.log(2))  # two of the four pairs are positive
    assert out["auc"] == pytest.approx(0.75)  # the model's own figures are untouched by the peers


def test_evaluate_rejects_unknown_protocol():
    events = make(CTR_ROWS)
    split = ctr(events, 2, C, 5)
    split.name = "bogus"
    with pytest.raises(ValueError, match="bogus"):
        evaluate(Fixed(CTR_SCORES), split, snapshot(2, 4, events), [1], np.eye(4))
