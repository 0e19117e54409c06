"""Daily snapshots: order, cap, no future data, cross-partition dedupe, as-of catalogue."""

from __future__ import annotations

import datetime as dt

from llmrec_core.etl import schemas
from llmrec_core.etl import sequences as seq

UTC = dt.timezone.utc
D1, D2, D3 = dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)


def ts(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def events_frame(spark, rows):
    data = [(eid, u, i, t, v, when, ds) for eid, u, i, t, v, when, ds in rows]
    return spark.createDataFrame(data, schemas.CLEAN_EVENTS)


EVENTS = [
    ("e1", "u1", "a", "view", None, ts(D1, 9), D1),
    ("e2", "u1", "b", "rate", 5.0, ts(D1, 8), D1),       # earlier in the day than e1
    ("e3", "u1", "c", "click", None, ts(D2, 10), D2),
    ("e4", "u1", "d", "click", None, ts(D3, 10), D3),
    ("e3", "u1", "c", "click", None, ts(D2, 10), D3),    # resent the next day: a duplicate
    ("e5", "u2", "a", "purchase", 9.5, ts(D1, 23, 59), D2),  # arrived late: visible from D2
    ("e6", "u3", "z", "view", None, ts(D3, 1), D3),
]


def test_sequences_are_time_ordered_capped_and_see_no_future(spark):
    events = seq.visible_events(events_frame(spark, EVENTS), D3)
    out = seq.build_sequences(events, seq.days_frame(spark, [D1, D2, D3]), max_len=2).collect()
    got = {(r["user_id"], r["ds"]): r for r in out}
    assert set(got) == {("u1", D1), ("u1", D2), ("u1", D3), ("u2", D2), ("u2", D3), ("u3", D3)}
    assert got[("u1", D1)]["item_ids"] == ["b", "a"]
    assert got[("u1", D1)]["event_types"] == ["rate", "view"] and got[("u1", D1)]["values"] == [5.0, None]
    assert got[("u1", D2)]["item_ids"] == ["a", "c"] and got[("u1", D2)]["n_events"] == 3
    assert got[("u1", D3)]["item_ids"] == ["c", "d"] and got[("u1", D3)]["n_events"] == 4  # e3 once
    assert got[("u1", D3)]["last_ts"].replace(tzinfo=UTC) == ts(D3, 10)
    assert got[("u2", D2)]["item_ids"] == ["a"]


def test_single_day_matches_the_same_day_of_a_range(spark):
    frame = events_frame(spark, EVENTS)
    ranged = seq.build_sequences(seq.visible_events(frame, D3), seq.days_frame(spark, [D1, D2, D3]), 50)
    single = seq.build_sequences(seq.visible_events(frame, D2), seq.days_frame(spark, [D2]), 50)
    assert sorted(map(tuple, ranged.where(ranged.ds == D2).collect())) == sorted(map(tuple, single.collect()))


def test_items_as_of_each_day_with_cold_and_unknown_items(spark):
    catalogue = spark.createDataFrame(
        [
            ("a", "Alpha", None, ["X"], {}, True, D1),
            ("b", "Beta", None, [], {}, True, D1),
            ("cold", "Cold One", "never touched", [], {}, True, D1),
            ("b", "Beta v2", None, [], {}, False, D3),
        ],
        schemas.CLEAN_ITEMS,
    )
    events = seq.visible_events(events_frame(spark, EVENTS), D3)
    out = seq.build_items(catalogue, events, seq.days_frame(spark, [D1, D2, D3])).collect()
    got = {(r["item_id"], r["ds"]): r for r in out}
    assert got[("b", D2)]["title"] == "Beta" and got[("b", D3)]["title"] == "Beta v2"
    assert got[("b", D3)]["available"] is False
    assert got[("cold", D3)]["n_events"] == 0 and got[("cold", D3)]["in_catalogue"] is True
    assert got[("a", D1)]["n_events"] == 1 and got[("a", D2)]["n_events"] == 2 and got[("a", D2)]["n_users"] == 2
    # Seen in events, absent from the catalogue: kept, flagged.
    assert got[("c", D2)]["in_catalogue"] is False and got[("c", D2)]["title"] is None
    assert got[("c", D3)]["n_events"] == 1  # the resent copy counts once
    assert ("d", D2) not in got and ("z", D2) not in got


def test_users_as_of_each_day(spark):
    profiles = spark.createDataFrame(
        [("u1", {"age": "30"}, D1), ("u1", {"age": "31"}, D3), ("u9", {"plan": "free"}, D1)], schemas.CLEAN_USERS
    )
    events = seq.visible_events(events_frame(spark, EVENTS), D3)
    out = seq.build_users(profiles, events, seq.days_frame(spark, [D2, D3])).collect()
    got = {(r["user_id"], r["ds"]): r for r in out}
    assert got[("u1", D2)]["attributes"] == {"age": "30"} and got[("u1", D3)]["attributes"] == {"age": "31"}
    assert got[("u9", D3)]["n_events"] == 0  # profile only: a cold user
    assert got[("u3", D3)]["snapshot_ds"] is None and got[("u3", D3)]["n_events"] == 1
    assert ("u3", D2) not in got
