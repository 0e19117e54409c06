"""The one day type: parsed once, one meaning of ``latest``, one error with one message."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from llmrec_core import cli, days
from llmrec_core.errors import LlmrecError, MissingInputError
from llmrec_core.io import lake


def _raw(home, *ds: str):
    for d in ds:
        lake.partition(home / "raw" / "events", dt.date.fromisoformat(d)).mkdir(parents=True)
    return home / "raw" / "events"


def test_latest_is_the_newest_day_with_raw_events(tmp_path):
    raw = _raw(tmp_path, "2024-01-02", "2024-01-10", "2024-01-05")
    assert days.resolve_day("latest", raw) == days.resolve_day(None, raw) == days.resolve_day("", raw) == dt.date(2024, 1, 10)
    assert days.resolve_day("2024-01-02", raw) == days.resolve_day(dt.date(2024, 1, 2), raw) == dt.date(2024, 1, 2)


def test_latest_without_raw_events_says_what_to_do(tmp_path):
    with pytest.raises(MissingInputError, match="no raw events partitions under .*llmrec ingest"):
        days.resolve_day("latest", tmp_path / "raw" / "events")


@pytest.mark.parametrize("bad", ["22/04/1998", "1998-13-01", "yesterday", "1998-04-22T00:00"])
def test_a_malformed_day_is_one_error_with_one_message(tmp_path, bad):
    raw = _raw(tmp_path, "2024-01-02")
    with pytest.raises(days.DayError) as err:
        days.resolve_day(bad, raw)
    assert str(err.value) == f"not a day: {bad!r} (YYYY-MM-DD or 'latest')"
    with pytest.raises(days.DayError, match=r"^not a day: .* \(YYYY-MM-DD\)$"):
        days.parse_day(bad)
    assert isinstance(err.value, LlmrecError)  # the commands print it as one `error:` line


def test_ranges_and_backfills(tmp_path):
    raw = _raw(tmp_path, "2024-01-01", "2024-01-03")
    ns = argparse.Namespace
    assert days.resolve_days(ns(ds="latest", start=None, end=None, all=False), raw) == [dt.date(2024, 1, 3)]
    assert days.resolve_days(ns(ds=None, start=None, end=None, all=True), raw) == days.day_range(dt.date(2024, 1, 1), dt.date(2024, 1, 3))
    assert len(days.resolve_days(ns(ds=None, start="2024-01-01", end="2024-01-05", all=False), raw)) == 5
    with pytest.raises(MissingInputError, match=r"raw partition not found: .*ds=2024-01-02"):
        days.resolve_days(ns(ds="2024-01-02", start=None, end=None, all=False), raw)
    with pytest.raises(LlmrecError, match="is before"):
        days.resolve_days(ns(ds=None, start="2024-01-05", end="2024-01-01", all=False), raw)
    with pytest.raises(days.DayError):
        days.resolve_days(ns(ds=None, start="2024-1-5x", end="2024-01-06", all=False), raw)


def test_a_scheduled_run_processes_the_day_before_its_logical_date(tmp_path):
    raw = _raw(tmp_path, "2024-01-09")
    assert days.scheduled_day(None, dt.datetime(2024, 1, 10, 1, tzinfo=dt.UTC), raw) == dt.date(2024, 1, 9)
    assert days.scheduled_day("2024-01-03", dt.datetime(2024, 1, 10, 1, tzinfo=dt.UTC), raw) == dt.date(2024, 1, 3)
    assert days.scheduled_day("latest", None, raw) == dt.date(2024, 1, 9)


@pytest.mark.parametrize("argv", [["train", "--ds", "1998-13-01"], ["score", "--ds", "soon"], ["etl", "--ds", "x"],
                                  ["pipeline", "--ds", "01/02/2024"], ["recommend", "--user", "1", "--ds", "latest"]])
def test_every_command_reports_a_bad_day_the_same_way(home, capsys, argv):
    _raw(home, "2024-01-02")
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: not a day: ") and "Traceback" not in err


def test_train_and_score_take_the_jobs_own_options(capsys):
    for job in ("train", "score"):
        with pytest.raises(SystemExit) as out:
            cli.main([job, "--help"])
        assert out.value.code == 0
        text = capsys.readouterr().out
        assert f"usage: llmrec {job}" in text and "--ds" in text and "--config" in text
    with pytest.raises(SystemExit):
        cli.main(["score", "--no-such-option"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
