"""Days in the future are refused, and retention never deletes the last good day.

A single stray ``raw/events/ds=2099-01-01`` used to become ``latest`` for every command, and a
day published far ahead made retention (counted from the newest day) delete every real day."""

from __future__ import annotations

import datetime as dt

import pytest

from llmrec_core import cli, days
from llmrec_core.errors import LlmrecError
from llmrec_core.io import lake
from llmrec_core.io.warehouse import Warehouse, write_parquet_copies
from tests.conftest import write_raw
from tests.io.test_warehouse import META, day_tables

REAL = dt.date(1998, 4, 22)
FUTURE = dt.date(2099, 1, 1)


@pytest.fixture
def stray(home):
    """A real day of raw events and a stray partition of a day in the future."""
    line = {"user_id": "u1", "item_id": "i1", "event_type": "click", "ts": f"{REAL}T10:00:00Z"}
    write_raw(home, "events", REAL, [line])
    write_raw(home, "events", FUTURE, [{**line, "ts": f"{FUTURE}T10:00:00Z"}])
    return home / "raw" / "events"


def test_a_future_partition_is_never_latest_and_naming_it_is_refused(stray, caplog, capsys):
    assert days.resolve_day("latest", stray) == REAL
    assert "skipping 1 raw events partition(s) in the future" in caplog.text
    with pytest.raises(LlmrecError, match="2099-01-01 is in the future"):
        days.resolve_day("2099-01-01", stray)
    assert cli.main(["etl", "--ds", "2099-01-01"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: 2099-01-01 is in the future") and "Traceback" not in err
    assert cli.main(["etl", "--start", "1998-04-22", "--end", "2099-01-01"]) == 1
    assert "is in the future" in capsys.readouterr().err


def test_all_days_skip_the_future_and_today_is_allowed(stray):
    class Args:
        ds, start, end, all = None, None, None, True

    assert days.resolve_days(Args(), stray) == [REAL]
    now = dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC)
    assert days.refuse_future(dt.date(2026, 12, 1), now) == dt.date(2026, 12, 1)
    assert days.refuse_future(dt.date(2026, 12, 2), now) == dt.date(2026, 12, 2)  # within the tolerance of midnight
    with pytest.raises(LlmrecError, match="in the future"):
        days.refuse_future(dt.date(2026, 12, 2), now - dt.timedelta(hours=2))


def test_retention_never_deletes_the_last_good_day(settings, tmp_path):
    """A day published far after the others keeps the day before it, in the warehouse and in the copies."""
    jump = REAL + dt.timedelta(days=400)
    with Warehouse.open(settings) as wh:
        for day in (REAL - dt.timedelta(days=1), REAL, jump):
            wh.publish(day, day_tables(day), **META, keep_days=30)
        assert wh.published_days() == [REAL, jump]
    for day in (REAL - dt.timedelta(days=1), REAL, jump):
        write_parquet_copies(tmp_path, day, day_tables(day), keep_days=30)
    assert lake.list_partitions(tmp_path / "serving" / "user_recommendations") == [REAL, jump]
