"""What the DAG files read at parse time (section ``orchestration``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from llmrec_core.settings.base import Section


class OrchestrationSettings(Section):
    """Read by the DAG files from the environment at parse time (``LLMREC_ORCHESTRATION__*``)."""

    # When llmrec_etl runs on its own: a cron expression or preset, or "none" (only when triggered:
    # a lake of historical data, such as MovieLens, has no new day to wait for).
    etl_schedule: str = "0 1 * * *"
    # "asset": train after every ETL run (the sequences asset); else a cron expression or preset.
    train_schedule: str = "asset"
    # The Airflow queue of the training task (a GPU worker listens on it).
    gpu_queue: str = "default"
    # How often llmrec_refresh looks for events that landed during the day.
    refresh_every_minutes: int = Field(15, ge=1, le=24 * 60)

    @model_validator(mode="after")
    def _check(self) -> OrchestrationSettings:
        for name, word in (("etl_schedule", "none"), ("train_schedule", "asset")):
            s = getattr(self, name).strip()
            if s != word and not (s.startswith("@") or len(s.split()) == 5):
                raise ValueError(f"{name} must be '{word}', a cron preset or a 5-field cron expression, not {s!r}")
        return self
