"""Raw partitions that are not ready are not consumed, and files that land late are.

An existing but empty ``raw/events/ds=D`` used to replace D's clean data with nothing and pass;
a file that landed after D was cleaned was never read."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from jobs import clean_logs
from llmrec_core import cli
from llmrec_core.errors import DataQualityError
from llmrec_core.io import lake
from llmrec_core.orchestration.tasks import etl_plan, raw_not_ready
from llmrec_core.settings import load_settings
from tests.conftest import write_raw
from tests.jobs.test_etl_jobs import D1, D2, ev, seed_day, table

DAY1, DAY2 = dt.date.fromisoformat(D1), dt.date.fromisoformat(D2)


def clean_count(home, ds):
    return sum(1 for r in table(home, "clean_events") if r["ds"] == ds)


@pytest.fixture
def cleaned(spark, home, prebuilt):
    """D1 cleaned (40 events); returns its raw events partition."""
    def clean_d1(home):
        seed_day(home, D1)
        assert cli.main(["etl", "--ds", D1]) == 0

    prebuilt("d1-cleaned", clean_d1)
    assert clean_count(home, D1) == 40
    return home / "raw" / "events" / f"ds={D1}"


def test_a_partition_without_its_marker_is_not_read(cleaned, home, capsys):
    shutil.rmtree(cleaned)
    cleaned.mkdir()  # the producer has created the directory, and nothing else yet
    capsys.readouterr()
    assert cli.main(["etl", "--ds", D1]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "has no _SUCCESS marker" in err and "Traceback" not in err
    assert clean_count(home, D1) == 40
    assert "_SUCCESS marker" in raw_not_ready(DAY1, load_settings())
    # A producer that cannot write the marker opts out, and its files are then read as they are.
    write_raw(home, "events", D1, [ev("u1", "i1", f"{D1}T08:00:00Z", event_id="only")], success=False)
    assert raw_not_ready(DAY1, load_settings()) is not None
    (home / "llmrec.yaml").write_text("clean:\n  require_success_marker: false\n")
    assert raw_not_ready(DAY1, load_settings()) is None
    assert cli.main(["etl", "--ds", D1]) == 0 and clean_count(home, D1) == 1


def test_a_complete_day_without_events_is_refused_unless_declared(cleaned, home, spark, capsys):
    shutil.rmtree(cleaned)
    cleaned.mkdir()
    (cleaned / lake.SUCCESS).touch()
    capsys.readouterr()
    assert cli.main(["etl", "--ds", D1]) == 1
    err = capsys.readouterr().err
    assert "no events in" in err and "refusing to replace the clean data" in err and "Traceback" not in err
    assert clean_count(home, D1) == 40
    with pytest.raises(DataQualityError, match="no events"):
        clean_logs.run(spark, load_settings(), [DAY1])
    assert clean_count(home, D1) == 40
    # Declared empty by its producer (llmrec's ingest does this for a day without events).
    (cleaned / lake.EMPTY).touch()
    assert cli.main(["etl", "--ds", D1]) == 0 and clean_count(home, D1) == 0


def test_empty_days_can_be_allowed(cleaned, home):
    shutil.rmtree(cleaned)
    cleaned.mkdir()
    (cleaned / lake.SUCCESS).touch()
    (home / "llmrec.yaml").write_text("clean:\n  allow_empty_days: true\n")
    assert cli.main(["etl", "--ds", D1]) == 0 and clean_count(home, D1) == 0


def test_a_file_that_lands_after_the_day_passed_is_cleaned(cleaned, home, spark):
    seed_day(home, D2)
    settings = load_settings()
    assert etl_plan(DAY2, settings) == {"start": D2, "end": D2}
    write_raw(home, "events", D1, [ev("u2", "i3", f"{D1}T23:59:00Z", event_id="late")], name="late.jsonl")
    # The next run cleans D1 again, with the late file, before D2.
    assert etl_plan(DAY2, settings) == {"start": D1, "end": D2}
    assert cli.main(["etl", "--start", D1, "--end", D2]) == 0
    assert clean_count(home, D1) == 41 and "late" in {r["event_id"] for r in table(home, "clean_events")}
    assert etl_plan(DAY2, settings) == {"start": D2, "end": D2}


def test_ingest_marks_its_partitions_and_declares_empty_days(tmp_path):
    from llmrec_core.ingest.rawwriter import RawWriter

    writer = RawWriter(tmp_path / "raw")
    writer.write("events", DAY1, ev("u1", "i1", f"{D1}T08:00:00Z"))
    writer.touch("events", DAY2)
    writer.commit()
    assert lake.not_ready(tmp_path / "raw" / "events", DAY1, True) is None and not lake.declared_empty(tmp_path / "raw" / "events", DAY1)
    assert lake.not_ready(tmp_path / "raw" / "events", DAY2, True) is None and lake.declared_empty(tmp_path / "raw" / "events", DAY2)
