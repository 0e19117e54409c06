"""Every validation check passes on good tables and fails, with its count, on broken ones."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from llmrec_core.scoring.validate import ValidationError, validate

# 3 users, 5 items; item 4 is unavailable. User 0 saw item 0, user 1 saw items 1 and 2.
SEEN = (np.array([0, 1, 3, 3]), np.array([0, 1, 2]))
ALLOWED = np.array([True, True, True, True, False])
K = 2


def recs(rows=None):
    rows = rows or [(0, 1, 1, 2.0), (0, 2, 2, 1.0), (1, 1, 0, 3.0), (1, 2, 3, 0.5), (2, 1, 0, 1.0), (2, 2, 1, 1.0)]
    u, r, i, s = zip(*rows, strict=True)
    return pa.table({"user": pa.array(u, pa.int32()), "rank": pa.array(r, pa.int32()), "item": pa.array(i, pa.int32()),
                     "score": pa.array(s, pa.float64()), "reason": ["Because"] * len(rows), "source": ["model"] * len(rows)})


def similar(drop_item=None):
    rows = [(i, r + 1, j, 1.0 - r / 10) for i in range(5) for r, j in enumerate([j for j in range(4) if j != i][:K])
            if i != drop_item]
    i, r, j, s = zip(*rows, strict=True)
    return pa.table({"item": pa.array(i, pa.int32()), "rank": pa.array(r, pa.int32()), "rec_item": pa.array(j, pa.int32()),
                     "score": pa.array(s)})


def audience(rows=((0, 1, 1, 2.0), (3, 1, 0, 1.0))):
    i, r, u, s = zip(*rows, strict=True)
    return pa.table({"item": pa.array(i, pa.int32()), "rank": pa.array(r, pa.int32()), "user": pa.array(u, pa.int32()), "score": pa.array(s)})


def checks(r=None, s=None, a=None, previous=None):
    fails = validate(r or recs(), s or similar(), a or audience(), seen=SEEN, allowed=ALLOWED, k=K, similar_k=K,
                     previous=previous or {}, tolerance=0.5)
    return {(f.table, f.check): f.count for f in fails}


def test_good_tables_pass():
    assert checks() == {}


@pytest.mark.parametrize("rows,check,count", [
    ([(0, 1, 0, 2.0), (0, 2, 2, 1.0), (1, 1, 0, 3.0), (1, 2, 3, 0.5), (2, 1, 0, 1.0), (2, 2, 1, 1.0)], "no already-seen items", 1),
    ([(0, 1, 4, 2.0), (0, 2, 2, 1.0), (1, 1, 0, 3.0), (1, 2, 3, 0.5), (2, 1, 0, 1.0), (2, 2, 1, 1.0)], "only available items passing the filters", 1),
    ([(0, 1, 1, 2.0), (0, 2, 1, 1.0), (1, 1, 0, 3.0), (1, 2, 3, 0.5), (2, 1, 0, 1.0), (2, 2, 1, 1.0)], "no duplicate pairs", 1),
    ([(0, 1, 1, 1.0), (0, 2, 2, 2.0), (1, 1, 0, 3.0), (1, 2, 3, 0.5), (2, 1, 0, 1.0), (2, 2, 1, 1.0)], "scores descending by rank", 1),
    ([(0, 1, 1, np.nan), (0, 2, 2, 1.0), (1, 1, 0, 3.0), (1, 2, 3, 0.5), (2, 1, 0, 1.0), (2, 2, 1, 1.0)], "finite scores", 1),
    ([(0, 1, 1, 2.0), (0, 3, 2, 1.0), (1, 1, 0, 3.0), (1, 2, 3, 0.5), (2, 1, 0, 1.0), (2, 2, 1, 1.0)], "ranks 1..n in order", 1),
    ([(0, 1, 1, 2.0), (0, 2, 2, 1.0), (1, 1, 0, 3.0), (2, 1, 0, 1.0), (2, 2, 1, 1.0)], "2 rows per known user", 1),
])
def test_each_broken_user_table_fails_its_check(rows, check, count):
    assert checks(r=recs(rows))[("user_recommendations", check)] == count


def test_a_user_with_fewer_candidates_than_k_needs_only_what_is_left():
    # With only items 0..3 allowed and user 1 having seen 1 and 2, k=3 leaves user 1 two items.
    rows = [(0, 1, 1, 3.0), (0, 2, 2, 2.0), (0, 3, 3, 1.0), (1, 1, 0, 3.0), (1, 2, 3, 0.5), (2, 1, 0, 1.0), (2, 2, 1, 1.0), (2, 3, 2, 0.1)]
    fails = validate(recs(rows), similar(), audience(), seen=SEEN, allowed=ALLOWED, k=3, similar_k=K, previous={}, tolerance=0.5)
    assert [f.check for f in fails if f.table == "user_recommendations"] == []


def test_missing_reasons_similar_items_and_seen_audience_fail():
    bad = recs().set_column(4, "reason", pa.array(["Because", "", "x", "x", None, "x"]))
    assert checks(r=bad)[("user_recommendations", "a reason on every row")] == 2
    assert checks(s=similar(drop_item=3))[("item_recommendations", "similar items for every catalogue item")] == 1
    assert checks(a=audience(((0, 1, 0, 2.0),)))[("item_audience", "no users who already engaged")] == 1


def test_row_counts_must_stay_within_tolerance_of_the_previous_day():
    assert checks(previous={"user_recommendations": 6, "item_recommendations": 10, "item_audience": 3}) == {}
    out = checks(previous={"user_recommendations": 20})
    assert out == {("user_recommendations", "row count within 50% of the previous day's 20"): 14}


def test_the_error_says_which_check_failed_for_how_many_rows():
    fails = validate(recs([(0, 1, 0, 2.0), (0, 2, 4, 1.0), (1, 1, 0, 3.0), (1, 2, 3, 0.5), (2, 1, 0, 1.0), (2, 2, 1, 1.0)]),
                     similar(), audience(), seen=SEEN, allowed=ALLOWED, k=K, similar_k=K, previous={}, tolerance=0.5)
    message = str(ValidationError(fails))
    assert "nothing published" in message
    assert "user_recommendations: no already-seen items failed for 1 rows" in message
    assert "only available items passing the filters failed for 1 rows" in message
