"""
### llmrec_score: nightly recommendations for every user and item, published atomically

Runs when the ETL updates `llmrec_sequences` (fresh snapshots), for that day:

1. **champion_exists**: the `champion` version (or the version named in the trigger form);
   without one the run is skipped, not failed: nothing has been trained yet.
2. **score** (`python -m jobs.score`): top-K per user with reasons, similar items and audience
   per item; validated (K rows per user, nothing seen or unavailable, no duplicates, finite
   descending scores, row counts near the previous day's) and published in one transaction to
   the warehouse (DuckDB, or Postgres with `LLMREC_WAREHOUSE_URL`); updates the
   `llmrec_recommendations` asset. A failed check fails the task and the previous day stays
   current in the `*_latest` views.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from llmrec_core.orchestration.assets import RECOMMENDATIONS, SEQUENCES
from llmrec_core.orchestration.dag_defaults import DAY_PATTERN, START, default_args


@dag(
    schedule=[SEQUENCES],
    start_date=START,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    tags=["llmrec", "score", "warehouse"],
    default_args=default_args(retries=2, retry_delay=timedelta(minutes=5), execution_timeout=timedelta(hours=4)),
    params={
        "ds": Param(None, type=["null", "string"], pattern=DAY_PATTERN, title="Day (UTC)",
                    description="Score as of this day, YYYY-MM-DD or `latest` (the newest day with raw events). "
                                "Empty: the day of the ETL run that triggered this run, else `latest`."),
        "model_version": Param(None, type=["null", "string"], pattern="^[0-9]+$", title="Model version",
                               description="Registered version of `llmrec` to use. Empty: the champion."),
        "k": Param(20, type="integer", minimum=1, maximum=1000, title="Recommendations per user"),
        "engine": Param("local", type="string", enum=["local", "spark"], title="Scoring engine"),
        "force": Param(False, type="boolean", title="Force",
                       description="Serve the version even though the promotion gate refused it. The scoring run records who forced it."),
    },
    doc_md=__doc__,
)
def llmrec_score():
    @task
    def champion_exists() -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        from llmrec_core.orchestration.tasks import champion_version, produced_day

        ctx = get_current_context()
        p = ctx["params"]
        if not p["model_version"] and champion_version() is None:
            raise AirflowSkipException("no champion version yet: run llmrec_train first")
        return produced_day(p["ds"], ctx.get("triggering_asset_events")).isoformat()

    @task(outlets=[RECOMMENDATIONS])
    def score(day: str) -> None:
        from llmrec_core.orchestration.tasks import run_job

        ctx = get_current_context()
        p = ctx["params"]
        args = ["--ds", day, *(["--model-version", p["model_version"]] if p["model_version"] else [])]
        if p["force"]:
            who = getattr(ctx["dag_run"], "triggering_user_name", None) or "airflow"
            args += ["--force", "--forced-by", f"{who} (Airflow run {ctx['dag_run'].run_id})"]
        run_job("jobs.score", args, env={"LLMREC_SCORING__K": str(p["k"]), "LLMREC_SCORING__ENGINE": p["engine"]})

    score(champion_exists())


llmrec_score()
