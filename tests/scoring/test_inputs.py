"""The popularity fallback ranks allowed items by recent positive events, then all-time ones."""

from __future__ import annotations

import datetime as dt

import numpy as np

from llmrec_core.data.interactions import KindVocab
from llmrec_core.data.protocols import DAY
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.scoring.inputs import popularity
from llmrec_core.settings import FeedbackSettings
from tests.toy import interactions

DS = dt.date(2024, 1, 31)


def test_recent_positives_first_then_all_time_then_index_and_only_allowed_items():
    end = int(dt.datetime(2024, 2, 1, tzinfo=dt.UTC).timestamp())
    recent, old = end - DAY, end - 30 * DAY
    rows = [(0, 3, 1, recent), (1, 3, 1, recent), (0, 1, 1, recent), (2, 1, 0, recent),  # item 1: one positive, one negative
            (0, 0, 1, old), (1, 0, 1, old), (2, 0, 1, old), (0, 4, 1, recent), (1, 4, 1, recent), (2, 4, 1, recent)]
    snap = Snapshot(DS, np.array([f"i{i}" for i in range(6)], dtype=object), [""] * 6, [""] * 6, np.ones(6, bool),
                    np.array(["u0", "u1", "u2"], dtype=object), ["", "", ""], interactions(rows),
                    KindVocab.from_feedback(FeedbackSettings()))
    allowed = np.array([True, True, True, True, False, True])  # item 4 is the most popular but barred
    items, shares = popularity(snap, allowed, days=7)
    assert items.tolist() == [3, 1, 0, 2, 5]
    assert np.allclose(shares, [2 / 6, 1 / 6, 0, 0, 0])
