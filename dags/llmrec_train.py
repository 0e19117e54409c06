"""
### llmrec_train: fine-tune, evaluate against every baseline, register, gate

Runs when the ETL updates `llmrec_sequences` (default), or on a cron schedule when
`LLMREC_ORCHESTRATION__TRAIN_SCHEDULE` holds one (e.g. `0 3 * * 0`, weekly).

1. **check_inputs**: the lake snapshot of the day exists.
2. **train** (`python -m jobs.train`, pool `gpu` of one slot): the LLM two-tower model with
   early stopping on the validation window, its ablations, popularity / item-kNN / EASE / ALS / content tuned on the
   same split, the cross-encoder re-ranker, a refit on everything up to the day; everything
   logged to MLflow; registered as `llmrec`; the `champion` alias moves only when the version
   beats the best tuned baseline and the current champion (the reason is a tag on the
   version). When a baseline won validation, it is registered too and may become the champion.
3. **champion**: which version serves now; updates the `llmrec_champion` asset.

Trigger form: the day, the language model (`packaged` or a local checkpoint path), the
fine-tuning mode and the maximum number of epochs.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from llmrec_core.orchestration.assets import CHAMPION, SEQUENCES
from llmrec_core.orchestration.dag_defaults import DAY_PATTERN, START, default_args

SCHEDULE = os.environ.get("LLMREC_ORCHESTRATION__TRAIN_SCHEDULE", "asset").strip()
GPU_QUEUE = os.environ.get("LLMREC_ORCHESTRATION__GPU_QUEUE", "default")


@dag(
    schedule=[SEQUENCES] if SCHEDULE == "asset" else CronTriggerTimetable(SCHEDULE, timezone="UTC"),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=12),
    tags=["llmrec", "train", "mlflow"],
    default_args=default_args(retries=1, retry_delay=timedelta(minutes=10), execution_timeout=timedelta(hours=1)),
    params={
        "ds": Param(None, type=["null", "string"], pattern=DAY_PATTERN, title="Day (UTC)",
                    description="Train on everything visible on this day, YYYY-MM-DD or `latest` (the newest day with raw events). "
                                "Empty: the day of the ETL run that triggered this run, else `latest`."),
        "encoder": Param("packaged", type="string", minLength=1, maxLength=4096, title="Language model",
                         pattern=r"^(packaged|/[^\s]+|random:([89]|[1-9][0-9]|[1-9][0-9]{2}|10[01][0-9]|102[0-4])x([1-9]|1[0-9]|2[0-4]))$",
                         description="`packaged` (the offline all-MiniLM-L6-v2), an absolute path to a local checkpoint "
                                     "(at most 1.5B weights), or `random:<hidden>x<layers>` (hidden up to 1024, layers up to 24)."),
        "finetune": Param("none", type="string", enum=["none", "lora", "full"], title="Fine-tuning mode",
                          description="`none` (frozen, cached text vectors: the CPU default), `lora` or `full`."),
        "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=500, title="Maximum epochs",
                        description="Empty: the configured `train.epochs`; early stopping still applies."),
    },
    doc_md=__doc__,
)
def llmrec_train():
    @task
    def check_inputs() -> str:
        from llmrec_core.orchestration.tasks import produced_day

        ctx = get_current_context()
        return produced_day(ctx["params"]["ds"], ctx.get("triggering_asset_events")).isoformat()

    @task(pool="gpu", queue=GPU_QUEUE, execution_timeout=timedelta(hours=8))
    def train(day: str) -> None:
        from llmrec_core.orchestration.tasks import run_job

        p = get_current_context()["params"]
        args = ["--ds", day, "--no-progress", "--finetune", p["finetune"], *(["--epochs", str(p["epochs"])] if p["epochs"] else [])]
        run_job("jobs.train", args, env={"LLMREC_MODEL__ENCODER": p["encoder"]} if p["encoder"] != "packaged" else None)

    @task(outlets=[CHAMPION])
    def champion() -> str | None:
        from llmrec_core.orchestration.tasks import champion_version

        return champion_version()

    train(check_inputs()) >> champion()


llmrec_train()
