"""
### llmrec_refresh: the lists of users who acted today, re-ranked with today's behaviours

Runs every 15 minutes (`LLMREC_ORCHESTRATION__REFRESH_EVERY_MINUTES`), one run at a time, on the
day in progress (UTC), or on the day and moment named in the trigger form (a replay):

1. **check**: skipped, not failed, while there is no champion, while the lake snapshot of the
   day before is not there yet, and when no event file has landed since the last refresh with
   the same model version (the watermark kept in `lake/_runs/refresh/ds=D.json`). Lists files
   and reads one record: no Spark, no model.
2. **refresh** (`python -m jobs.refresh`): today's files cleaned with the nightly rules (bad
   lines quarantined with a reason under `lake/intraday/quarantine`), today's behaviours
   appended to the users' sequences, each active user's list ranked again by the champion and
   re-ranked over "today's behaviours as text [SEP] candidate" (when `refresh.rerank` says so),
   validated, and published to `user_recommendations_fresh` in one transaction. The view
   `user_recommendations_current` shows them until the nightly rows of that day exist.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from llmrec_core.orchestration.dag_defaults import DAY_PATTERN, START, default_args

EVERY = int(os.environ.get("LLMREC_ORCHESTRATION__REFRESH_EVERY_MINUTES", "15"))


@dag(
    schedule=timedelta(minutes=EVERY),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=max(30, 2 * EVERY)),
    tags=["llmrec", "refresh", "warehouse"],
    default_args=default_args(retries=2, retry_delay=timedelta(minutes=1), execution_timeout=timedelta(minutes=20)),
    params={
        "ds": Param(None, type=["null", "string"], pattern=DAY_PATTERN, title="Day (UTC)",
                    description="The day to refresh, YYYY-MM-DD or `latest` (the newest day with raw events). "
                                "Empty: the day in progress."),
        "until": Param(None, type=["null", "string"], pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?$",
                       title="Until", description="Only events before this moment (ISO-8601, UTC when no offset): replay a past day."),
        "model_version": Param(None, type=["null", "string"], pattern="^[0-9]+$", title="Model version",
                               description="Registered version of `llmrec` to use. Empty: the champion."),
        "k": Param(20, type="integer", minimum=1, maximum=1000, title="Recommendations per user",
                   description="As many as the nightly table has (the `k` of llmrec_score), so the view's lists stay alike."),
        "force": Param(False, type="boolean", title="Refresh even when nothing new has landed"),
    },
    doc_md=__doc__,
)
def llmrec_refresh():
    @task
    def check() -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        from llmrec_core.orchestration.tasks import champion_version, refresh_day, refresh_pending

        ctx = get_current_context()
        p = ctx["params"]
        version = p["model_version"] or champion_version()
        if version is None:
            raise AirflowSkipException("no champion version yet: run llmrec_train first")
        day = refresh_day(p["ds"], ctx["dag_run"].run_after)
        if not (p["force"] or p["until"]) and (why := refresh_pending(day, version)) is not None:
            raise AirflowSkipException(why)
        return day.isoformat()

    @task
    def refresh(day: str) -> None:
        from llmrec_core.orchestration.tasks import run_job

        p = get_current_context()["params"]
        args = ["--ds", day, *(["--until", p["until"]] if p["until"] else []),
                *(["--model-version", p["model_version"]] if p["model_version"] else [])]
        run_job("jobs.refresh", args, env={"LLMREC_SCORING__K": str(p["k"])})

    refresh(check())


llmrec_refresh()
