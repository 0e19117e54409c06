"""MLflow tracking and the model registry (section ``tracking``)."""

from __future__ import annotations

from pydantic import Field

from llmrec_core.settings.base import Section


class TrackingSettings(Section):
    # None: sqlite:///$LLMREC_HOME/mlflow.db, or $MLFLOW_TRACKING_URI when set.
    tracking_uri: str | None = None
    experiment: str = "llmrec"
    registered_model: str = "llmrec"
    champion_alias: str = "champion"
    # Promote only when the new version beats the champion by this much on the gate metric.
    promote_margin: float = Field(0.0, ge=0.0)
