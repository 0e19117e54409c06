"""MLflow tracking and the model registry (section ``tracking``)."""

from __future__ import annotations

from pydantic import Field, field_serializer, field_validator

from llmrec_core.settings.base import Section, redact_url

BASELINES = ("popularity", "item_knn", "ease", "als", "content")


class TrackingSettings(Section):
    # None: sqlite:///$LLMREC_HOME/mlflow.db, or $MLFLOW_TRACKING_URI when set.
    tracking_uri: str | None = None
    experiment: str = "llmrec"
    registered_model: str = "llmrec"
    champion_alias: str = "champion"
    # The newest version the gate refused (moved on by each refusal, dropped when that version
    # is promoted): the one to compare with the champion, or to serve with `score --force`.
    challenger_alias: str = "challenger"
    # Promote only when the new version beats the champion by this much on the gate metric.
    promote_margin: float = Field(0.0, ge=0.0)
    # When the language model loses to a tuned baseline on validation, register that baseline as
    # well and let it become the champion (it must still beat the current one), so the served
    # lists are always the best validated ones. Off: nothing is promoted in that case.
    serve_baseline_winner: bool = True
    # The tuned baselines whose validation scores set the bar for the language model (all by
    # default; ["popularity"] is the weakest bar that still means something).
    gate_baselines: list[str] = list(BASELINES)
    # MLflow's system metrics (CPU, memory, disk, network, GPU as system/*) on every job's top
    # run, sampled every system_metrics_interval seconds; a run shorter than that records none.
    system_metrics: bool = True
    system_metrics_interval: float = Field(10.0, gt=0)

    @field_serializer("tracking_uri")
    def _redact(self, uri: str | None) -> str | None:
        return redact_url(uri)

    @field_validator("gate_baselines")
    @classmethod
    def _known_baselines(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(BASELINES))
        if unknown or not value:
            raise ValueError(f"gate_baselines must name one or more of {', '.join(BASELINES)}; got {value}")
        return value
