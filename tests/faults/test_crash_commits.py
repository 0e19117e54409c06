"""A partition commit killed at any instant loses nothing, and the next run repairs the state.

``swap_dir`` used to rename the old partition away and then the new one in: a process killed
between the two left the day missing while its previous run summary still said "passed", so
the loss was permanent. Each case here SIGKILLs a real ``jobs.etl`` at one commit point."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pyarrow.dataset as pads
import pytest

from jobs import etl
from jobs.common import guarded
from llmrec_core.io import lake
from llmrec_core.orchestration.tasks import etl_plan
from tests.conftest import write_raw
from tests.jobs.test_etl_jobs import ev, seed_day

D1, D2 = "2024-01-01", "2024-01-02"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def clean_rows(home, ds) -> int | None:
    part = home / "lake" / "clean_events" / f"ds={ds}"
    return pads.dataset(part, format="parquet").count_rows() if part.is_dir() else None


def passed(home, ds) -> bool:
    path = home / "lake" / "_runs" / "clean_logs" / "events" / f"ds={ds}.json"
    return path.is_file() and json.loads(path.read_text())["passed"]


@pytest.mark.parametrize("point", ["before-exchange", "after-exchange", "between-renames", "before-summary"])
def test_a_commit_killed_at_any_point_is_repaired_by_the_next_run(spark, home, settings, prebuilt, point):
    def two_clean_days(home):
        for ds in (D1, D2):
            seed_day(home, ds)
        with guarded(settings, "etl", [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]):
            etl.run(spark, settings, [dt.date(2024, 1, 1), dt.date(2024, 1, 2)])

    prebuilt("two-clean-days", two_clean_days)
    assert clean_rows(home, D2) == 40 and passed(home, D2) and etl_plan(dt.date(2024, 1, 2), settings) == {"start": D2, "end": D2}
    # Ten more events land for D2, and its ETL is rerun and killed mid-commit.
    write_raw(home, "events", D2, [ev("u1", f"i{k}", f"{D2}T23:{k:02d}:00Z", event_id=f"late-{k}") for k in range(10)], name="e.jsonl")
    proc = subprocess.run([sys.executable, "-m", "tests.faults.crash", point, "jobs.etl", "--ds", D2],
                          cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]

    after_kill = clean_rows(home, D2)
    if point == "between-renames":
        # The only state a reader could catch without the day: the journal says how to finish.
        assert after_kill is None and list((home / "lake").rglob("_commit.*.json"))
    else:
        assert after_kill in (40, 50)  # the old day or the new one, whole, never neither
    assert clean_rows(home, D1) == 40
    # The day no longer counts as cleaned, whatever its previous summary said.
    assert not passed(home, D2)
    plan = etl_plan(dt.date(2024, 1, 2), settings)
    assert plan == {"start": D2, "end": D2}

    with guarded(settings, "etl", [dt.date(2024, 1, 2)]):  # finishes an interrupted commit first
        if point == "between-renames":
            assert clean_rows(home, D2) == 50 and not list((home / "lake").rglob("_commit.*.json"))
        etl.run(spark, settings, [dt.date(2024, 1, 2)])
    assert clean_rows(home, D2) == 50 and passed(home, D2) and clean_rows(home, D1) == 40
    leftovers = [p.name for p in (home / "lake" / "clean_events").iterdir() if not p.name.startswith("ds=")]
    assert leftovers == []


def test_swap_dir_replaces_adds_and_removes_in_one_step(tmp_path):
    target = tmp_path / "t" / "ds=2024-01-01"
    for content in ("old", "new"):
        staged = tmp_path / "staging" / content
        staged.mkdir(parents=True)
        (staged / "part-0").write_text(content)
        lake.swap_dir(staged, target)
        assert (target / "part-0").read_text() == content and not staged.exists()
    lake.swap_dir(tmp_path / "staging" / "nothing", target)
    assert not target.exists() and os.listdir(tmp_path / "t") == []


def test_recover_rolls_back_when_the_new_content_is_gone(tmp_path):
    """Killed between the renames after an error handler already deleted the staging: the
    previous partition comes back, rather than nothing."""
    table = tmp_path / "t"
    trash = table / "_replaced.ds=2024-01-01.x"
    trash.mkdir(parents=True)
    (trash / "part-0").write_text("old")
    lake.write_json_atomic(table / "_commit.ds=2024-01-01.json", {
        "target": str(table / "ds=2024-01-01"), "staged": str(tmp_path / "gone"), "trash": str(trash), "pid": 2 ** 22 + 1, "host": "x"})
    assert lake.recover(tmp_path) == [table / "ds=2024-01-01"]
    assert (table / "ds=2024-01-01" / "part-0").read_text() == "old" and sorted(os.listdir(table)) == ["ds=2024-01-01"]
    assert lake.recover(tmp_path) == []
