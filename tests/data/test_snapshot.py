"""load_snapshot over a tiny parquet lake written with pyarrow (no Spark)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmrec_core.data.snapshot import day_start, load_snapshot
from llmrec_core.errors import MissingInputError

D = dt.date(2024, 1, 10)
UTC = dt.timezone.utc

EVENTS = pa.schema([
    ("event_id", pa.string()), ("user_id", pa.string()), ("item_id", pa.string()),
    ("event_type", pa.string()), ("value", pa.float64()), ("ts", pa.timestamp("us", tz="UTC")),
])
ITEMS = pa.schema([
    ("item_id", pa.string()), ("title", pa.string()), ("description", pa.string()),
    ("categories", pa.list_(pa.string())), ("attributes", pa.map_(pa.string(), pa.string())),
    ("available", pa.bool_()), ("popularity", pa.int64()),
])
USERS = pa.schema([("user_id", pa.string()), ("attributes", pa.map_(pa.string(), pa.string()))])


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, minute, tzinfo=UTC)


def write(home: Path, table: str, ds: str, rows: list[dict], schema: pa.Schema) -> None:
    part = home / "lake" / table / f"ds={ds}"
    part.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), part / "part-0.parquet")


def ev(event_id, user, item, event_type, value, ts):
    return {"event_id": event_id, "user_id": user, "item_id": item, "event_type": event_type, "value": value, "ts": ts}


def item(item_id, title, categories=(), description=None, attributes=(), available=True):
    return {"item_id": item_id, "title": title, "description": description, "categories": list(categories),
            "attributes": list(attributes), "available": available, "popularity": 1}


def write_lake(home: Path) -> None:
    write(home, "clean_events", "2024-01-09", [
        ev("e1", "u1", "i1", "rate", 5.0, at(9, 10)),
        ev("e2", "u1", "i2", "click", None, at(9, 9)),
        ev("e3", "u2", "i2", "rate", 1.0, at(9, 12)),
        ev("e4", "u2", "i3", "view", None, at(9, 23, 59)),
    ], EVENTS)
    write(home, "clean_events", "2024-01-10", [
        ev("e4", "u2", "i3", "view", None, at(10, 0, 30)),  # a second, later copy of e4
        ev("e5", "u1", "i3", "rate", 3.0, at(10, 20)),
        ev("e6", "u2", "i1", "click", None, at(11, 0)),  # ts >= D + 1 day
    ], EVENTS)
    write(home, "clean_events", "2024-01-11", [
        ev("e7", "u1", "i1", "click", None, at(10, 12)),  # partition after D
    ], EVENTS)
    # Written unsorted; the snapshot of the day before has an older title.
    write(home, "items", "2024-01-10", [
        item("i3", "Heat", ["Crime"], available=False),
        item("i1", "Toy Story (1995)", ["Animation", "Comedy"]),
        item("i2", None, [], "A heist.", [("year", "1995")], available=None),
    ], ITEMS)
    write(home, "items", "2024-01-09", [item("i1", "Old title"), item("i2", "x"), item("i3", "y")], ITEMS)
    write(home, "users", "2024-01-10", [
        {"user_id": "u3", "attributes": [("occupation", "writer")]},
        {"user_id": "u2", "attributes": [("gender", "F"), ("age", "25")]},
        {"user_id": "u1", "attributes": []},
    ], USERS)


def secs(t: dt.datetime) -> int:
    return int(t.timestamp())


def test_catalogue_and_profiles(home, settings):
    write_lake(home)
    snap = load_snapshot(settings, D)
    assert snap.ds == D
    assert snap.item_ids.tolist() == ["i1", "i2", "i3"]
    assert snap.user_ids.tolist() == ["u1", "u2", "u3"]
    assert snap.item_titles == ["Toy Story (1995)", "Item i2", "Heat"]
    assert snap.item_texts == ["Toy Story (1995). Genres: Animation, Comedy.", "Item i2. A heist.", "Heat. Genres: Crime."]
    assert snap.item_available.tolist() == [True, True, False]
    assert snap.profile_texts == ["", "User profile: age: 25.", "User profile: occupation: writer."]
    assert snap.counts() == {"events": 5, "users": 3, "items": 3}
    assert snap.end_ts == secs(dt.datetime(2024, 1, 11, tzinfo=UTC))


def test_events_as_of_day(home, settings):
    write_lake(home)
    snap = load_snapshot(settings, D)
    ev_ = snap.events
    # e6 (ts on D + 1) and e7 (partition D + 1) are out; e4 is kept once, with its earliest ts.
    # Sorted by (user, ts): u1 = 0: i2 click, i1 rate 5, i3 rate 3; u2 = 1: i2 rate 1, i3 view.
    assert ev_.user.tolist() == [0, 0, 0, 1, 1]
    assert ev_.item.tolist() == [1, 0, 2, 1, 2]
    assert ev_.ts.tolist() == [secs(at(9, 9)), secs(at(9, 10)), secs(at(10, 20)), secs(at(9, 12)), secs(at(9, 23, 59))]
    assert ev_.event_type.tolist() == ["click", "rate", "rate", "rate", "view"]
    np.testing.assert_array_equal(ev_.value, np.array([np.nan, 5.0, 3.0, 1.0, np.nan], np.float32))
    # Default feedback: click 1, rate >= 4 -> 1, rate 3 -> -1, rate <= 2 -> 0, view -1.
    assert ev_.label.tolist() == [1, 1, -1, 0, -1]
    # Kinds: click 2; rate buckets 5 + rint((v - 0.5) / 4.5 * 10): 5.0 -> 15, 3.0 -> 11, 1.0 -> 6; view 4.
    assert ev_.kind.tolist() == [2, 15, 11, 6, 4]
    assert ev_.ts.max() < snap.end_ts == day_start(D + dt.timedelta(days=1))


def test_earlier_day_sees_less(home, settings):
    write_lake(home)
    write(home, "users", "2024-01-09", [{"user_id": "u1", "attributes": []}, {"user_id": "u2", "attributes": []}],
          USERS)
    snap = load_snapshot(settings, dt.date(2024, 1, 9))
    assert snap.item_titles[0] == "Old title"
    # Only the D-1 partition: e1..e4, e4 at its D-1 time.
    assert len(snap.events) == 4
    assert snap.events.ts.max() == secs(at(9, 23, 59))


def test_day_without_events(home, settings):
    write_lake(home)
    write(home, "items", "2024-01-08", [item("i1", "a")], ITEMS)
    write(home, "users", "2024-01-08", [{"user_id": "u1", "attributes": []}], USERS)
    snap = load_snapshot(settings, dt.date(2024, 1, 8))
    assert len(snap.events) == 0
    assert snap.counts() == {"events": 0, "users": 1, "items": 1}


def test_single_event(home, settings):
    write(home, "clean_events", "2024-01-10", [ev("e1", "u1", "i1", "click", None, at(10, 1))], EVENTS)
    write(home, "items", "2024-01-10", [item("i1", "a")], ITEMS)
    write(home, "users", "2024-01-10", [{"user_id": "u1", "attributes": []}], USERS)
    snap = load_snapshot(settings, D)
    assert snap.events.item.tolist() == [0] and snap.events.label.tolist() == [1]


def test_missing_items_snapshot(home, settings):
    write_lake(home)
    (home / "lake" / "items" / "ds=2024-01-10" / "part-0.parquet").unlink()
    (home / "lake" / "items" / "ds=2024-01-10").rmdir()
    with pytest.raises(MissingInputError, match="items") as err:
        load_snapshot(settings, D)
    assert str(settings.lake_table("items") / "ds=2024-01-10") in str(err.value)


def test_missing_events(home, settings):
    write(home, "items", "2024-01-10", [item("i1", "a")], ITEMS)
    write(home, "users", "2024-01-10", [{"user_id": "u1", "attributes": []}], USERS)
    with pytest.raises(MissingInputError, match="clean events"):
        load_snapshot(settings, D)


def test_event_with_unknown_item(home, settings):
    write_lake(home)
    write(home, "clean_events", "2024-01-10", [ev("e9", "u1", "i9", "click", None, at(10, 1))], EVENTS)
    with pytest.raises(MissingInputError, match="1 events"):
        load_snapshot(settings, D)
