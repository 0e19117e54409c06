"""The Parquet copies under ``lake/serving`` never drift from the warehouse, and MLflow going
away after a successful publish does not fail the day.

The copies used to be written after the warehouse commit with nothing to notice a crash in
between, so they could miss a published day for good; and an MLflow error while closing the
scoring run failed a day whose rows were already published."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys

import mlflow
import pyarrow.dataset as pads
import pytest

from jobs import score
from llmrec_core.io import tracking
from llmrec_core.io.warehouse import Warehouse, reconcile_parquet_copies
from tests.faults.test_crash_commits import REPO
from tests.faults.test_forged_model import register_popularity


@pytest.fixture
def champion(toy_registry):
    settings, last, snap = toy_registry
    version = register_popularity(settings, snap, str(last - dt.timedelta(days=2)))  # servable on the last two days
    tracking.promote(settings, version, "first champion", expected=None)
    return settings, last


def copies(settings, name, ds):
    part = settings.lake_dir / "serving" / name / f"ds={ds}"
    return pads.dataset(part, format="parquet").to_table() if part.is_dir() else None


def assert_copies_match(settings, ds):
    with Warehouse.open(settings) as wh:
        published = wh.read_day(ds)
    for name, table in published.items():
        copy = copies(settings, name, ds)
        assert copy is not None, name
        assert copy.sort_by([(c, "ascending") for c in copy.column_names]).to_pylist() == \
            table.drop_columns(["ds"]).sort_by([(c, "ascending") for c in copy.column_names]).to_pylist(), name


def test_a_crash_between_the_warehouse_commit_and_the_copies_is_repaired(champion):
    settings, last = champion
    proc = subprocess.run([sys.executable, "-m", "tests.faults.crash", "after-publish", "jobs.score", "--ds", str(last)],
                          cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    with Warehouse.open(settings) as wh:
        assert wh.published_days() == [last]
        assert copies(settings, "user_recommendations", last) is None  # the drift the crash left
        assert reconcile_parquet_copies(settings.lake_dir, wh, settings.warehouse.keep_days) == [last]
        assert reconcile_parquet_copies(settings.lake_dir, wh, settings.warehouse.keep_days) == []
    assert_copies_match(settings, last)


def test_the_next_scoring_run_repairs_copies_of_any_day(champion):
    settings, last = champion
    earlier = last - dt.timedelta(days=1)
    score.run(settings, earlier)
    score.run(settings, last)
    # Damage: one day's copy vanishes, another day is copied that the warehouse never published.
    shutil.rmtree(settings.lake_dir / "serving" / "item_audience" / f"ds={earlier}")
    shutil.copytree(settings.lake_dir / "serving" / "item_audience" / f"ds={last}",
                    settings.lake_dir / "serving" / "item_audience" / "ds=2023-01-01")
    score.run(settings, last)
    for day in (earlier, last):
        assert_copies_match(settings, day)
    assert not (settings.lake_dir / "serving" / "item_audience" / "ds=2023-01-01").exists()


def test_mlflow_failing_after_the_publish_does_not_fail_the_day(champion, monkeypatch):
    settings, last = champion
    end_run = mlflow.end_run

    def unreachable(status="FINISHED"):
        if status == "FINISHED":
            end_run("FAILED")  # leave no active run behind for the other tests
            raise mlflow.exceptions.MlflowException("API request to http://127.0.0.1:5000 failed: connection refused")
        return end_run(status)

    monkeypatch.setattr(mlflow, "end_run", unreachable)
    out = score.run(settings, last)
    assert out["counts"]["user_recommendations"] > 0
    assert_copies_match(settings, last)
