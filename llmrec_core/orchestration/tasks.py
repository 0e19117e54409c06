"""What the DAGs' task bodies call: each a few lines in the DAG file, one function here.

Tasks pass days and paths, never data. Training and scoring run as subprocesses
(``python -m jobs.train ...``) so that a worker with a GPU (an Airflow queue) can take them and
the scheduler's worker never loads torch.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from llmrec_core import days
from llmrec_core.errors import DataQualityError, LlmrecError, MissingInputError
from llmrec_core.io import lake
from llmrec_core.settings import Settings, load_settings

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
TAIL_LINES = 40


def etl_day(param: str | None, logical_date: dt.datetime | None) -> dt.date:
    """The day of an ETL run: the ``ds`` param, else the day before the logical date."""
    return days.scheduled_day(param, logical_date, load_settings().raw_table("events"))


def produced_day(param: str | None, triggering_events: Mapping | None) -> dt.date:
    """The day a training or scoring run is for.

    A manual run takes its ``ds`` param (a day or ``latest``). A run triggered by the sequences
    asset takes the day that the ETL's ``data_checks`` put on the asset event; when the run
    consumed several events (the ETL ran more than once before it started), the newest event's
    day wins, so re-running the ETL for an old day trains and scores that day."""
    raw = load_settings().raw_table("events")
    if param:
        return days.resolve_day(param, raw)
    events = [e for evs in (triggering_events or {}).values() for e in evs if (e.extra or {}).get("ds")]
    if events:
        newest = max(events, key=lambda e: e.timestamp)
        return days.parse_day(newest.extra["ds"])
    return days.resolve_day(days.LATEST, raw)


def etl_plan(ds: dt.date, settings: Settings | None = None) -> dict[str, str]:
    """The days the ETL run for ``ds`` must clean: from the first raw day that never had a
    passing clean run (a backfill, in one Spark application) up to ``ds``."""
    settings = settings or load_settings()
    days.refuse_future(ds)
    raw = lake.list_partitions(settings.raw_table("events"))
    if ds not in raw:
        raise MissingInputError(f"raw partition not found: {lake.partition(settings.raw_table('events'), ds)}")
    pending = [d for d in raw if d <= ds and not (lake.read_run_summary(settings.runs_dir, "clean_logs/events", d) or {}).get("passed")]
    start = min(pending, default=ds)
    log.info("ETL for %s cleans %s..%s (%d day(s) never cleaned)", ds, start, ds, len(pending))
    return {"start": start.isoformat(), "end": ds.isoformat()}


def check_snapshots(ds: dt.date, settings: Settings | None = None) -> dict[str, int]:
    """Data checks after the ETL: the snapshots of ``ds`` exist, and every cleaned day up to
    ``ds`` reconciled (read = clean + quarantined + duplicates)."""
    settings = settings or load_settings()
    summary = lake.read_run_summary(settings.runs_dir, "build_sequences", ds)
    if not summary:
        raise MissingInputError(f"no build_sequences summary for {ds}: the snapshots of {ds} were not built")
    for table in ("sequences", "items", "users"):
        if not lake.partition(settings.lake_table(table), ds).is_dir():
            raise MissingInputError(f"{lake.partition(settings.lake_table(table), ds)} is missing")
    if summary["items"] == 0 or summary["users"] == 0:
        raise DataQualityError(f"snapshot of {ds} is empty: {summary}")
    for source in ("events", "items", "users"):
        s = lake.read_run_summary(settings.runs_dir, f"clean_logs/{source}", ds)
        if s is not None and not s.get("reconciled", True):
            raise DataQualityError(f"clean_logs/{source} for {ds} did not reconcile: {s}")
    return {k: int(v) for k, v in summary.items() if k != "ds"}


def champion_version(settings: Settings | None = None) -> str | None:
    from llmrec_core.io import tracking

    settings = settings or load_settings()
    tracking.setup(settings)
    current = tracking.champion(settings)
    return None if current is None else str(current.version)


def landed(settings: Settings, ds: dt.date) -> tuple[list[Path], str]:
    """The raw event files of ``ds`` that have landed so far, and their watermark."""
    files = lake.raw_files(settings.raw_table("events"), ds)
    return files, lake.fingerprint(files)


def refresh_day(param: str | None, run_after: dt.datetime | None) -> dt.date:
    """The day an intraday refresh is for: the ``ds`` param, else the UTC day the run started."""
    if param:
        return days.resolve_day(param, load_settings().raw_table("events"))
    return (run_after or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()


def refresh_pending(ds: dt.date, version: str | None, settings: Settings | None = None) -> str | None:
    """Why a refresh of ``ds`` with model ``version`` would change nothing (a reason to skip), or
    None. Cheap: lists files and reads one JSON record; no Spark, no model."""
    settings = settings or load_settings()
    files, mark = landed(settings, ds)
    if not files:
        return f"no event file has landed under raw/events/ds={ds} yet"
    previous = ds - dt.timedelta(days=1)
    if not lake.partition(settings.lake_table("users"), previous).is_dir():
        return f"no lake snapshot of {previous} yet: the refresh of {ds} starts from it (run the ETL of {previous})"
    last = lake.read_run_summary(settings.runs_dir, "refresh", ds)
    if last and last.get("watermark") == mark and last.get("model_version") == version and last.get("until") is None:
        return f"nothing new since the refresh at {last['refreshed_at']} ({len(files)} file(s), version {version})"
    return None


def run_job(module: str, args: list[str], env: dict[str, str] | None = None) -> None:
    """``python -m <module> <args>`` with this interpreter; its output streams into the task log,
    and a failure raises with the last lines (the task log shows them, the run turns failed).

    Lines go straight to file descriptor 1, which is the task log under a worker and the
    pipeline's log file under ``llmrec pipeline``, whatever ``sys.stdout`` is at the time."""
    cmd = [sys.executable, "-m", module, *args]
    log.info("running %s", " ".join(cmd))
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        tail.append(line.rstrip("\n"))
        os.write(1, line.encode("utf-8", "replace"))
    if proc.wait() != 0:
        raise LlmrecError(f"{module} exited with {proc.returncode}; last lines:\n" + "\n".join(tail))
