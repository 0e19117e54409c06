"""
### llmrec_etl: raw logs of a day into the lake

Daily at 01:00 UTC, for the day that just ended (or the `ds` given in the trigger form). The
schedule is `LLMREC_ORCHESTRATION__ETL_SCHEDULE` (a cron expression, or `none`: only when
triggered, for a lake of historical data that has no new day to wait for).

1. **wait_for_raw** (a sensor in reschedule mode: it frees its worker slot between checks):
   waits up to 12 hours for the raw events partition of the day and its producer's `_SUCCESS`
   marker (`clean.require_success_marker`). A day in the future fails at once.
2. **plan**: days before it that were never cleaned, or whose raw files changed since they were
   cleaned (a file that landed late), are added to the run, so a first run backfills in one
   Spark application instead of hundreds of DAG runs.
3. **clean_logs** (Spark, `spark_default`): schema, dedupe, bots, quarantine with reasons,
   reconciled counts; a day over `clean.max_bad_share`, or without a single event (unless its
   producer declared it empty), fails the task.
4. **build_sequences** (Spark): per-day snapshots of sequences, items and users.
5. **data_checks**: the snapshots exist and are not empty, the counts reconciled; then the
   `llmrec_sequences` asset is updated, which schedules training and scoring.

Point `spark_default` at a cluster to run the Spark steps there (see `infra/README.md`).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Param, PokeReturnValue, dag, get_current_context, task

from llmrec_core.orchestration.assets import SEQUENCES
from llmrec_core.orchestration.dag_defaults import DAY_PATTERN, START, default_args

JOBS = Path(__file__).resolve().parents[1] / "jobs"
# The driver and the Python workers use this environment's interpreter (it has the package).
SPARK_ENV = {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
SCHEDULE = os.environ.get("LLMREC_ORCHESTRATION__ETL_SCHEDULE", "0 1 * * *").strip()
RAW_POKE, RAW_WAIT = timedelta(minutes=5), timedelta(hours=12)
DAY_RANGE = ["--start", "{{ ti.xcom_pull(task_ids='plan')['start'] }}", "--end", "{{ ti.xcom_pull(task_ids='plan')['end'] }}"]


@dag(
    schedule=None if SCHEDULE == "none" else SCHEDULE,
    start_date=START,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    tags=["llmrec", "etl", "spark"],
    default_args=default_args(retries=2, retry_delay=timedelta(minutes=5), execution_timeout=timedelta(hours=3)),
    params={
        "ds": Param(None, type=["null", "string"], pattern=DAY_PATTERN, title="Day (UTC)",
                    description="Day to process, YYYY-MM-DD or `latest` (the newest day with raw events). Empty: the day before the run's logical date."),
    },
    doc_md=__doc__,
)
def llmrec_etl():
    @task.sensor(mode="reschedule", poke_interval=RAW_POKE.total_seconds(), timeout=RAW_WAIT.total_seconds())
    def wait_for_raw() -> PokeReturnValue:
        from llmrec_core.orchestration.tasks import etl_day, raw_not_ready

        ctx = get_current_context()
        why = raw_not_ready(etl_day(ctx["params"]["ds"], ctx.get("logical_date")))
        if why is not None:
            print(f"waiting: {why}")
        return PokeReturnValue(is_done=why is None)

    @task
    def plan() -> dict[str, str]:
        from llmrec_core.orchestration.tasks import etl_day, etl_plan

        ctx = get_current_context()
        return etl_plan(etl_day(ctx["params"]["ds"], ctx.get("logical_date")))

    clean = SparkSubmitOperator(task_id="clean_logs", application=str(JOBS / "clean_logs.py"), conn_id="spark_default",
                                application_args=DAY_RANGE, env_vars=SPARK_ENV, name="llmrec-clean-logs")
    build = SparkSubmitOperator(task_id="build_sequences", application=str(JOBS / "build_sequences.py"), conn_id="spark_default",
                                application_args=DAY_RANGE, env_vars=SPARK_ENV, name="llmrec-build-sequences")

    @task(outlets=[SEQUENCES], retries=0)
    def data_checks() -> dict[str, int]:
        from llmrec_core.orchestration.tasks import check_snapshots, etl_day

        ctx = get_current_context()
        day = etl_day(ctx["params"]["ds"], ctx.get("logical_date"))
        counts = check_snapshots(day)
        # Training and scoring runs triggered by this event use this day, not the newest one.
        ctx["outlet_events"][SEQUENCES].extra = {"ds": day.isoformat(), **counts}
        return counts

    wait_for_raw() >> plan() >> clean >> build >> data_checks()


llmrec_etl()
