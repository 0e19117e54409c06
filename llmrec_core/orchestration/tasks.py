"""What the DAGs' task bodies call: each a few lines in the DAG file, one function here.

Tasks pass days and paths, never data. Training and scoring run as subprocesses
(``python -m jobs.train ...``) so that a worker with a GPU (an Airflow queue) can take them and
the scheduler's worker never loads torch.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import threading
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
    table = settings.raw_table("events")
    if (why := raw_not_ready(ds, settings)) is not None:
        raise MissingInputError(why)
    pending = [d for d in lake.list_partitions(table) if d <= ds and needs_cleaning(d, settings)]
    start = min(pending, default=ds)
    log.info("ETL for %s cleans %s..%s (%d day(s) never cleaned or changed since)", ds, start, ds, len(pending))
    return {"start": start.isoformat(), "end": ds.isoformat()}


def raw_not_ready(ds: dt.date, settings: Settings | None = None) -> str | None:
    """Why the raw events of ``ds`` cannot be cleaned yet (missing, no ``_SUCCESS``), or None."""
    settings = settings or load_settings()
    return lake.not_ready(settings.raw_table("events"), ds, settings.clean.require_success_marker)


def needs_cleaning(ds: dt.date, settings: Settings) -> bool:
    """A complete raw day that never had a passing clean run, or whose files changed since its
    last one (a file that landed late, or was replaced)."""
    table = settings.raw_table("events")
    if lake.not_ready(table, ds, settings.clean.require_success_marker) is not None:
        return False
    summary = lake.read_run_summary(settings.runs_dir, "clean_logs/events", ds) or {}
    if not summary.get("passed"):
        return True
    cleaned = summary.get("raw_watermark")  # absent in summaries written before it was recorded
    if cleaned is not None and cleaned != lake.fingerprint(lake.raw_files(table, ds)):
        log.warning("raw events of %s changed since they were cleaned (a file landed late): cleaning the day again", ds)
        return True
    return False


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

    The job never outlives its task. It runs in its own process group (with the Spark JVM or
    torchrun workers it starts), which is ended when the task times out or fails, when Airflow
    asks the task to stop (SIGTERM, as ``on_kill`` does), and, on Linux, when the task process
    itself is killed outright: otherwise a killed training could still promote a model later.

    Lines go straight to file descriptor 1, which is the task log under a worker and the
    pipeline's log file under ``llmrec pipeline``, whatever ``sys.stdout`` is at the time."""
    cmd = [sys.executable, "-m", module, *args]
    log.info("running %s", " ".join(cmd))
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True,
                            preexec_fn=_die_with_parent())
    assert proc.stdout is not None
    previous = _stop_on_sigterm(proc)
    try:
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            os.write(1, line.encode("utf-8", "replace"))
        proc.wait()
    except BaseException:  # a timeout, an interrupt, a failure while streaming
        stop_group(proc)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if proc.returncode != 0:
        raise LlmrecError(f"{module} exited with {proc.returncode}; last lines:\n" + "\n".join(tail))


STOP_GRACE_S = 20


def stop_group(proc: subprocess.Popen) -> None:
    """End a job started by :func:`run_job` and everything it started: SIGTERM to its process
    group, then SIGKILL after ``STOP_GRACE_S`` seconds."""
    if proc.poll() is not None:
        return
    log.warning("stopping %s (pid %d) and its process group", " ".join(map(str, proc.args[2:4])), proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=STOP_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


def _stop_on_sigterm(proc: subprocess.Popen):
    """Chain a SIGTERM handler that ends the job's group before the task's own handler runs
    (Airflow's calls the operator's ``on_kill``); returns the handler to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        stop_group(proc)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    return previous


def _die_with_parent():
    """A ``preexec_fn`` that makes the kernel SIGKILL the job when the task process dies
    (``PR_SET_PDEATHSIG``); None where the platform has no such thing."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def arm() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)

    return arm
