"""``llmrec pipeline --ds D``: the three DAGs for day D, through Airflow's in-process ``dag.test()``.

The same DAG files the scheduler runs, on the embedded SQLite metadata DB of
``$LLMREC_HOME/airflow``: ``llmrec_etl`` (backfilling never-cleaned days in one Spark
application), then ``llmrec_train``, then ``llmrec_score``. Each DAG's task output goes to
``$LLMREC_HOME/airflow/logs/pipeline/<dag>-<ds>.log``; a failed run raises with the failed tasks
and the tail of that log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from llmrec_core.errors import LlmrecError
from llmrec_core.settings import Settings
from llmrec_stack.airflow_env import (
    DAGS,
    SPARK_LOCAL,
    airflow_home,
    environment,
)

log = logging.getLogger(__name__)
DAG_IDS = ("llmrec_etl", "llmrec_train", "llmrec_score")
TAIL_LINES = 60


def _airflow(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("airflow")
    out = subprocess.run([str(exe), *args], capture_output=True, text=True, env=os.environ.copy(), timeout=600)
    if check and out.returncode != 0:
        raise LlmrecError(f"airflow {' '.join(args[:2])} failed ({out.returncode}): {(out.stderr or out.stdout)[-2000:]}")
    return out


def setup(settings: Settings) -> dict[str, str]:
    """Environment, migrated metadata DB, the ``gpu`` pool and the ``spark_default`` connection."""
    env = environment(settings)
    os.environ.update(env)
    started = time.perf_counter()
    _airflow("db", "migrate")
    _airflow("pools", "set", "gpu", "1", "One GPU: training tasks take turns")
    if _airflow("connections", "get", "spark_default", check=False).returncode != 0:
        _airflow("connections", "add", "spark_default", "--conn-json", json.dumps(SPARK_LOCAL))
    log.info("airflow ready in %s (%.0fs)", airflow_home(settings), time.perf_counter() - started)
    return env


@contextlib.contextmanager
def _captured(path: Path) -> Iterator[None]:
    """This process's stdout and stderr file descriptors (and so its children's) go to ``path``.

    Only the descriptors move: Airflow's loggers keep the ``sys.stdout`` object they were
    created with, so swapping the object would leave them writing to a closed file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "wb") as f:
        os.dup2(f.fileno(), 1), os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


class TaskLines(logging.Handler):
    """A line on ``out`` as each task of a ``dag.test()`` run starts and ends, taken from the
    ``[DAG TEST]`` records of Airflow's loop (logger ``airflow.sdk.definitions.dag``); the end line
    adds the task's state from the metadata DB and ``describe(task_id)``."""

    EVENT = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\S+)")

    def __init__(self, out: TextIO, dag_id: str, describe: Callable[[str], str]):
        super().__init__(logging.INFO)
        self.out, self.dag_id, self.describe = out, dag_id, describe
        self.started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        m = self.EVENT.match(record.getMessage())
        if not m:
            return
        event, task_id = m.groups()
        if event == "starting":
            self.started[task_id] = time.perf_counter()
            self._print(f"  {self.dag_id}.{task_id} ...")
            return
        seconds = time.perf_counter() - self.started.pop(task_id, time.perf_counter())
        state = self._state(task_id)
        try:
            what = self.describe(task_id) if state == "success" else ""
        except Exception as err:  # the report must never fail the run it reports on
            what = f"(no summary: {err})"
        self._print(f"  {self.dag_id}.{task_id} {state} in {seconds:.0f}s" + (f": {what}" if what else ""))

    def _state(self, task_id: str) -> str:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            state = session.scalar(select(TaskInstance.state).where(TaskInstance.dag_id == self.dag_id, TaskInstance.task_id == task_id)
                                   .order_by(TaskInstance.start_date.desc()).limit(1))
        return str(getattr(state, "value", state))

    def _print(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


@contextlib.contextmanager
def task_lines(dag_id: str, describe: Callable[[str], str]) -> Iterator[None]:
    """:class:`TaskLines` on the terminal (this process's stdout as it is now, before the task
    output is captured into the log file)."""
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
    handler = TaskLines(out, dag_id, describe)
    logger = logging.getLogger("airflow.sdk.definitions.dag")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        out.close()


def _tail(path: Path, n: int = TAIL_LINES) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    return "\n".join(lines[-n:])


def load_dags() -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    if bag.import_errors:
        raise LlmrecError("DAG import errors: " + "; ".join(f"{f}: {e.strip().splitlines()[-1]}" for f, e in bag.import_errors.items()))
    return bag.dags


def run_dag(dag, conf: dict, log_path: Path, describe: Callable[[str], str] = lambda task_id: "") -> dict[str, str]:
    """One ``dag.test()`` run, a line per task start and end on the terminal; the state of each
    task, or an error naming the failed ones."""
    started = time.perf_counter()
    with task_lines(dag.dag_id, describe), _captured(log_path):
        run = dag.test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    log.info("%s: %s in %.0fs (%s)", dag.dag_id, run.state, time.perf_counter() - started,
             ", ".join(f"{t} {s}" for t, s in states.items()))
    if str(run.state) != "success":
        failed = [t for t, s in states.items() if s in ("failed", "upstream_failed")]
        raise LlmrecError(f"{dag.dag_id} run {run.run_id} {run.state}; failed tasks: {', '.join(failed) or '-'}. "
                          f"Last lines of {log_path}:\n{_tail(log_path)}")
    return states


def run_pipeline(settings: Settings, ds: dt.date, *, train_conf: dict | None = None, score_conf: dict | None = None) -> dict[str, dict[str, str]]:
    from llmrec_stack.report import task_result

    setup(settings)
    dags = load_dags()
    logs = airflow_home(settings) / "logs" / "pipeline"
    confs = {"llmrec_etl": {"ds": ds.isoformat()}, "llmrec_train": {"ds": ds.isoformat(), **(train_conf or {})},
             "llmrec_score": {"ds": ds.isoformat(), **(score_conf or {})}}
    out = {}
    for dag_id in DAG_IDS:
        path = logs / f"{dag_id}-{ds}.log"
        print(f"{dag_id} for {ds} (task output: {path})", flush=True)
        out[dag_id] = run_dag(dags[dag_id], confs[dag_id], path, lambda task_id: task_result(settings, ds, task_id))
    return out
