"""Evaluation protocols on small hand-made interaction logs, and the behaviour kinds / labels."""

from __future__ import annotations

import numpy as np

from llmrec_core.data.interactions import Interactions, KindVocab, feedback_labels
from llmrec_core.data.protocols import DAY, cold_items, ctr, loo, temporal
from llmrec_core.settings import FeedbackSettings
from tests.toy import interactions as make


def pairs(events: Interactions) -> set[tuple[int, int, int]]:
    return set(zip(events.user.tolist(), events.item.tolist(), events.ts.tolist(), strict=True))


# --- leave-last-out -----------------------------------------------------------------------------

# Rows deliberately out of time order.
LOO_ROWS = [
    (0, 5, 1, 10), (0, 3, 1, 30), (0, 1, 1, 20), (0, 4, 1, 40),  # user 0: 5, 1, 3, 4 in time order
    (1, 2, 1, 5), (1, 0, 1, 6),  # user 1: only 2 events
    (2, 0, 1, 100), (2, 1, 1, 50), (2, 2, 1, 70),  # user 2: 1, 2, 0 in time order
]  # user 3 has no events


def test_loo_holds_out_last_and_second_to_last_in_time_order():
    valid, test = loo(make(LOO_ROWS), n_users=4)
    assert valid.name == "loo_valid" and test.name == "loo"
    assert test.users.tolist() == [0, 2]
    assert valid.users.tolist() == [0, 2]
    assert [t.tolist() for t in test.truth] == [[4], [0]]
    assert [t.tolist() for t in valid.truth] == [[3], [2]]
    # Predictions are made at the last known behaviour, never at the held-out event's time.
    assert test.asof.tolist() == [30, 70]
    assert valid.asof.tolist() == [20, 50]
    assert test.info == {"users": 2} and valid.info == {"users": 2}


def test_loo_short_users_only_train():
    valid, test = loo(make(LOO_ROWS), n_users=4)
    assert pairs(test.train) == {(0, 5, 10), (0, 1, 20), (1, 2, 5), (1, 0, 6), (2, 1, 50)}
    assert valid.train is test.train
    assert 1 not in test.users.tolist()
    # With a lower threshold user 1 is evaluated: last item 0, second-to-last 2.
    valid2, test2 = loo(make(LOO_ROWS), n_users=4, min_events=2)
    assert test2.users.tolist() == [0, 1, 2]
    assert [t.tolist() for t in test2.truth] == [[4], [0], [0]]
    assert [t.tolist() for t in valid2.truth] == [[3], [2], [2]]


def test_loo_histories_and_no_leak():
    valid, test = loo(make(LOO_ROWS), n_users=4)
    held_test = {(0, 4, 40), (2, 0, 100)}
    held_valid = {(0, 3, 30), (2, 2, 70)}
    train = pairs(test.train)
    assert not train & (held_test | held_valid)
    # The test history = train + the validation events; never the test targets.
    assert pairs(test.history) == train | held_valid
    assert pairs(valid.history) == train
    # Histories stay sorted by (user, ts).
    order = np.lexsort((test.history.ts, test.history.user))
    assert order.tolist() == list(range(len(test.history)))


# --- temporal / cold items / ctr ----------------------------------------------------------------

C = 10 * DAY  # cutoff
W = 2  # window days: [C, C + 2 days)
ROWS = [
    (0, 0, 1, 1 * DAY),  # before the cutoff
    (0, 0, 1, C + 1),  # already seen: not truth
    (0, 1, 1, C + 5),  # truth
    (0, 2, 0, C + 6),  # explicit negative: not truth
    (0, 3, -1, C + DAY),  # history only: not truth
    (0, 4, 1, C + 2 * DAY),  # window end is exclusive
    (0, 5, 1, C + 2 * DAY - 1),  # truth
    (1, 2, 1, C),  # exactly at the cutoff: truth; user 1 is cold (nothing before C)
    (1, 7, 1, C + 3 * DAY),  # after the window
    (2, 1, 1, 2 * DAY),  # before
    (2, 2, 1, C + DAY),  # truth
    (3, 6, -1, 3 * DAY),  # a view before the cutoff ...
    (3, 6, 1, C + 3),  # ... so this later click is not new
]


def test_temporal_train_has_no_future():
    split = temporal(make(ROWS), n_users=4, cutoff=C, window_days=W)
    assert split.name == "temporal"
    assert split.train.ts.max() < C
    assert pairs(split.train) == {(0, 0, DAY), (2, 1, 2 * DAY), (3, 6, 3 * DAY)}
    assert split.history is split.train


def test_temporal_truth_is_new_window_positives():
    split = temporal(make(ROWS), n_users=4, cutoff=C, window_days=W)
    assert split.users.tolist() == [0, 1, 2]
    assert [t.tolist() for t in split.truth] == [[1, 5], [2], [2]]
    assert split.asof.tolist() == [C, C, C]
    assert split.info == {"users": 3, "warm_users": 2, "cold_users": 1}


def test_temporal_wider_window():
    # 4 days: item 4 (at C + 2d) and item 7 (at C + 3d) now count.
    split = temporal(make(ROWS), n_users=4, cutoff=C, window_days=4)
    assert [t.tolist() for t in split.truth] == [[1, 4, 5], [2, 7], [2]]


def test_cold_items_only_items_unseen_before_cutoff():
    split = cold_items(make(ROWS), n_users=4, n_items=8, cutoff=C, window_days=W)
    assert split.name == "cold_items"
    # Seen before C: 0, 1, 6. Window positives on other items: 5 (user 0), 2 (users 1, 2).
    # Item 2's explicit negative by user 0 is not a positive; item 3 is history only; 4 and 7 fall outside.
    assert split.items.tolist() == [2, 5]
    assert [t.tolist() for t in split.item_truth] == [[1, 2], [0]]
    assert split.users.tolist() == [0, 1, 2, 3]
    assert split.asof.tolist() == [C] * 4
    assert split.train.ts.max() < C
    assert [t.tolist() for t in split.truth] == [[5], [2], [2], []]
    assert split.info == {"items": 2, "users": 3, "pairs": 3}


def test_ctr_pairs_are_labelled_window_events():
    split = ctr(make(ROWS), n_users=4, cutoff=C, window_days=W)
    users, items, labels = split.pairs
    # Window events with label >= 0, in (user, ts) order; the -1 view and out-of-window rows are dropped.
    assert users.tolist() == [0, 0, 0, 0, 1, 2, 3]
    assert items.tolist() == [0, 1, 2, 5, 2, 2, 6]
    assert labels.tolist() == [1, 1, 0, 1, 1, 1, 1]
    assert split.users.tolist() == [0, 1, 2, 3]
    assert split.info == {"pairs": 7, "positives": 6}
    assert split.train.ts.max() < C


# --- kinds and labels ---------------------------------------------------------------------------

FB = FeedbackSettings()


def test_kind_vocab_encode():
    kinds = KindVocab.from_feedback(FB)
    # Non-rating types, sorted: add_to_cart=1, click=2, purchase=3, view=4; ratings 5..15; unknown 16.
    assert kinds.event_types == ("add_to_cart", "click", "purchase", "view")
    assert kinds.size == 17
    types = np.array(["add_to_cart", "click", "purchase", "view", "rate", "rate", "rate", "rate", "rate", "rate",
                      "share"], dtype=object)
    values = np.array([np.nan] * 4 + [0.5, 5.0, 3.0, np.nan, 9.0, 0.0, np.nan], dtype=np.float32)
    # rate buckets: rint((v - 0.5) / 4.5 * 10): 0.5 -> 0, 5.0 -> 10, 3.0 -> 5.56 -> 6,
    # NaN -> as rating_min -> 0, 9.0 -> clipped to 10, 0.0 -> -1.1 -> clipped to 0.
    assert kinds.encode(types, values).tolist() == [1, 2, 3, 4, 5, 15, 11, 5, 15, 5, 16]


def test_feedback_labels_defaults():
    types = np.array(["rate"] * 7 + ["click", "view", "purchase", "add_to_cart", "share"], dtype=object)
    values = np.array([5.0, 4.0, 3.5, 3.0, 2.5, 2.0, np.nan] + [np.nan] * 5, dtype=np.float32)
    assert feedback_labels(FB, types, values).tolist() == [1, 1, -1, -1, -1, 0, -1, 1, -1, 1, 1, -1]


def test_feedback_labels_follow_settings():
    fb = FeedbackSettings(positive_types=["purchase"], history_types=["view", "click"], rating_positive_min=3.0)
    types = np.array(["rate", "rate", "click", "purchase"], dtype=object)
    values = np.array([3.0, 2.9, np.nan, np.nan])
    assert feedback_labels(fb, types, values).tolist() == [1, -1, -1, 1]
