"""The events cleaner on a few inline rows: every bad kind gets its reason, nothing valid is lost."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from llmrec_core.etl import clean
from tests.conftest import raw_frame

UTC = dt.timezone.utc
DS = "2024-01-05"
NOW = dt.datetime(2024, 1, 10, tzinfo=UTC)
PARAMS = clean.CleanParams(
    event_types=("add_to_cart", "click", "purchase", "rate", "view"),
    rating_type="rate",
    rating_min=0.5,
    rating_max=5.0,
    max_id_length=16,
    future_tolerance_hours=1.0,
    bot_max_events_per_minute=5,
    now=NOW,
)


def ok(**over):
    row = {"user_id": "u1", "item_id": "i1", "event_type": "click", "ts": "2024-01-05T12:00:00Z"}
    row.update(over)
    return {k: v for k, v in row.items() if v is not ...}


BAD = [
    ("", "blank_line"),
    ("   ", "blank_line"),
    ("{not json", "not_json"),
    ('{"user_id": "u1", "item_id": "i1"', "not_json"),
    ('["u1", "i1"]', "not_object"),
    ('"just a string"', "not_object"),
    ("42", "not_object"),
    (ok(user_id=...), "missing_user_id"),
    (ok(user_id=None), "missing_user_id"),
    (ok(user_id="  "), "missing_user_id"),
    (ok(user_id=17), "bad_type_user_id"),
    (ok(user_id=["u1"]), "bad_type_user_id"),
    (ok(user_id="u\u00011"), "control_chars_user_id"),
    (ok(user_id="u" * 17), "too_long_user_id"),
    (ok(item_id=...), "missing_item_id"),
    (ok(item_id=3.5), "bad_type_item_id"),
    (ok(item_id="i\n1"), "control_chars_item_id"),
    (ok(item_id="i" * 40), "too_long_item_id"),
    (ok(event_id=99), "bad_type_event_id"),
    (ok(event_id="e\t1"), "control_chars_event_id"),
    (ok(event_type=...), "missing_event_type"),
    (ok(event_type=None), "missing_event_type"),
    (ok(event_type="teleport"), "unknown_event_type"),
    (ok(event_type="Click"), "unknown_event_type"),
    (ok(event_type=1), "unknown_event_type"),
    (ok(event_type="rate"), "missing_rating"),
    (ok(event_type="rate", value=None), "missing_rating"),
    (ok(event_type="rate", value="five"), "rating_not_numeric"),
    (ok(event_type="rate", value="4"), "rating_not_numeric"),
    (ok(event_type="rate", value=6), "rating_out_of_range"),
    (ok(event_type="rate", value=0), "rating_out_of_range"),
    (ok(value="cheap"), "value_not_numeric"),
    (ok(ts=...), "missing_ts"),
    (ok(ts=None), "missing_ts"),
    (ok(ts="2024-01-05T12:00:00"), "ts_no_offset"),
    (ok(ts="2024-01-05"), "ts_no_offset"),
    (ok(ts="yesterday"), "ts_unparsable"),
    (ok(ts="2024-02-30T00:00:00Z"), "ts_unparsable"),
    (ok(ts="2024-01-05T25:00:00Z"), "ts_unparsable"),
    (ok(ts=True), "ts_unparsable"),
    (ok(ts=1e20), "ts_unparsable"),
    (ok(ts="1704456000"), "ts_unparsable"),
    (ok(ts="1969-12-31T23:59:59Z"), "ts_before_1970"),
    (ok(ts=-5), "ts_before_1970"),
    (ok(ts="2024-01-06T01:30:00Z"), "ts_in_future"),  # past end of day + 1h tolerance
    (ok(ts="2024-01-20T00:00:00Z"), "ts_in_future"),
]


@pytest.fixture(scope="module")
def parsed_bad(spark):
    lines = [line for line, _ in BAD]
    rows = clean.parse_events(raw_frame(spark, DS, lines), PARAMS).select("raw_line", "reason").collect()
    return rows


@pytest.mark.parametrize("index", range(len(BAD)), ids=[reason for _, reason in BAD])
def test_bad_line_gets_its_reason(parsed_bad, index):
    line, reason = BAD[index]
    assert parsed_bad[index]["reason"] == reason, f"{line!r}"


def test_every_reason_is_documented(parsed_bad):
    from llmrec_core.etl.schemas import REASONS

    assert {r["reason"] for r in parsed_bad} <= set(REASONS)


GOOD = [
    (ok(ts="2024-01-05T12:00:00Z"), dt.datetime(2024, 1, 5, 12, tzinfo=UTC)),
    (ok(ts="2024-01-05T14:00:00+02:00"), dt.datetime(2024, 1, 5, 12, tzinfo=UTC)),
    (ok(ts="2024-01-05T07:00:00-0500"), dt.datetime(2024, 1, 5, 12, tzinfo=UTC)),
    (ok(ts="2024-01-05T14:00:00+02"), dt.datetime(2024, 1, 5, 12, tzinfo=UTC)),
    (ok(ts="2024-01-05 12:00:00.250Z"), dt.datetime(2024, 1, 5, 12, 0, 0, 250000, tzinfo=UTC)),
    (ok(ts="2024-01-05T12:00Z"), dt.datetime(2024, 1, 5, 12, tzinfo=UTC)),
    (ok(ts=1704456000), dt.datetime(2024, 1, 5, 12, tzinfo=UTC)),
    (ok(ts=1704456000.5), dt.datetime(2024, 1, 5, 12, 0, 0, 500000, tzinfo=UTC)),
    (ok(ts="2024-01-06T00:30:00Z"), dt.datetime(2024, 1, 6, 0, 30, tzinfo=UTC)),  # within tolerance
    (ok(event_type="rate", value=4.5), dt.datetime(2024, 1, 5, 12, tzinfo=UTC)),
    (ok(event_type="purchase", value=19.99), dt.datetime(2024, 1, 5, 12, tzinfo=UTC)),
    (ok(value=None), dt.datetime(2024, 1, 5, 12, tzinfo=UTC)),
    (ok(event_id=""), dt.datetime(2024, 1, 5, 12, tzinfo=UTC)),
    ("\ufeff" + '{"user_id": "u1", "item_id": "i1", "event_type": "view", "ts": 1704456000}',
     dt.datetime(2024, 1, 5, 12, tzinfo=UTC)),
    (ok(user_id="üser-é", extra={"nested": [1, 2]}), dt.datetime(2024, 1, 5, 12, tzinfo=UTC)),
]


def test_valid_rows_pass_with_utc_timestamps(spark):
    lines = [line for line, _ in GOOD]
    rows = clean.parse_events(raw_frame(spark, DS, lines), PARAMS).collect()
    assert [r["reason"] for r in rows] == [None] * len(GOOD)
    got = [r["ts"].replace(tzinfo=UTC) if r["ts"].tzinfo is None else r["ts"] for r in rows]
    assert got == [ts for _, ts in GOOD]
    assert rows[9]["value"] == 4.5 and rows[10]["value"] == 19.99 and rows[11]["value"] is None
    assert rows[14]["user_id"] == "üser-é"


def test_derived_event_id_is_deterministic_and_ignores_ts_spelling(spark):
    lines = [ok(ts="2024-01-05T12:00:00Z"), ok(ts=1704456000), ok(ts="2024-01-05T13:00:00+01:00"),
             ok(ts="2024-01-05T12:00:01Z"), ok(event_id="given-1")]
    ids = [r["event_id"] for r in clean.parse_events(raw_frame(spark, DS, lines), PARAMS).collect()]
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] != ids[0] and len(ids[0]) == 32
    assert ids[4] == "given-1"


def _split(spark, lines, params=PARAMS):
    split = clean.label_events(clean.parse_events(raw_frame(spark, DS, lines), params), params)
    clean_rows, quarantine = split.clean.collect(), split.quarantine.collect()
    counts = {("clean", None): len(clean_rows)} if clean_rows else {}
    for r in quarantine:
        counts[("quarantined", r["reason"])] = counts.get(("quarantined", r["reason"]), 0) + 1
    duplicates = sum(r["count"] for r in split.duplicates.collect())
    if duplicates:
        counts[("duplicate", None)] = duplicates
    return clean_rows, quarantine, counts


def test_duplicates_keep_the_earliest_copy(spark):
    lines = [
        ok(event_id="e1", ts="2024-01-05T12:00:05Z", item_id="late"),
        ok(event_id="e1", ts="2024-01-05T12:00:01Z", item_id="early"),
        ok(event_id="e1", ts="2024-01-05T12:00:01Z", item_id="early"),
        ok(event_id="e2"),
        ok(),  # derived id
        ok(),  # exact resend: same derived id
    ]
    clean_rows, quarantine, counts = _split(spark, lines)
    by_id = {r["event_id"]: r for r in clean_rows}
    assert len(clean_rows) == 3 and len(by_id) == 3
    assert by_id["e1"]["item_id"] == "early"
    assert quarantine == []
    assert counts == {("clean", None): 3, ("duplicate", None): 3}


def test_bots_are_quarantined_for_the_day_and_humans_kept(spark):
    burst = [ok(user_id="bot", item_id=f"i{k}", ts=f"2024-01-05T08:00:{k:02d}Z") for k in range(6)]
    later = [ok(user_id="bot", item_id="x", ts="2024-01-05T20:00:00Z")]
    human = [ok(user_id="h", item_id=f"i{k}", ts=f"2024-01-05T08:0{k}:00Z") for k in range(6)]
    bad = ["not json"]
    clean_rows, quarantine, counts = _split(spark, burst + later + human + bad)
    assert sorted({r["user_id"] for r in clean_rows}) == ["h"]
    assert len(clean_rows) == 6
    reasons = sorted(r["reason"] for r in quarantine)
    assert reasons == ["bot_user"] * 7 + ["not_json"]
    assert counts[("quarantined", "bot_user")] == 7 and counts[("clean", None)] == 6


def test_duplicates_do_not_make_a_bot(spark):
    # Five distinct events plus resends of the same ones: at the limit, not over it.
    rows = [ok(event_id=f"e{k}", item_id=f"i{k}", ts=f"2024-01-05T08:00:{k:02d}Z") for k in range(5)]
    clean_rows, quarantine, counts = _split(spark, rows + rows)
    assert len(clean_rows) == 5 and quarantine == []
    assert counts[("duplicate", None)] == 5


def test_counts_cover_every_row(spark):
    lines = [line for line, _ in BAD] + [line for line, _ in GOOD]
    _, _, counts = _split(spark, lines, dataclasses.replace(PARAMS, bot_max_events_per_minute=100))
    assert sum(counts.values()) == len(lines)
    assert sum(n for (status, _), n in counts.items() if status == "quarantined") == len(BAD)
