"""Typed settings for every llmrec component.

Resolution order (later wins): defaults below -> YAML file -> environment.

- YAML: ``--config PATH``, else ``$LLMREC_CONFIG``, else ``$LLMREC_HOME/llmrec.yaml`` if present.
- Environment: ``LLMREC_<KEY>`` for top-level keys, ``LLMREC_<SECTION>__<KEY>`` for nested ones,
  e.g. ``LLMREC_CLEAN__MAX_BAD_SHARE=0.1``. Values are parsed as YAML scalars/lists.

Unknown keys, in the file or the environment, are an error that names the key.
Every path derives from ``home`` (``$LLMREC_HOME``, default ``./.llmrec``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmrec_core.model_settings import (
    EvaluationSettings,
    ModelSettings,
    RerankSettings,
    TextSettings,
    TrackingSettings,
    TrainSettings,
)
from llmrec_core.serving_settings import ScoringSettings, WarehouseSettings

ENV_PREFIX = "LLMREC_"
# Environment variables with the prefix that are not settings keys.
RESERVED_ENV = {"LLMREC_CONFIG"}


class SettingsError(ValueError):
    """A configuration problem, reported with the offending key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SparkSettings(_Section):
    master: str = "local[*]"
    app_name: str = "llmrec"
    driver_memory: str = "2g"
    shuffle_partitions: int = Field(8, ge=1)
    # Any further spark.* settings, passed through verbatim.
    conf: dict[str, str] = Field(default_factory=dict)


class FeedbackSettings(_Section):
    """Which events mean what. Configuration, not code (DESIGN.md section 1)."""

    positive_types: list[str] = ["click", "add_to_cart", "purchase"]
    history_types: list[str] = ["view"]
    rating_type: str = "rate"
    rating_min: float = 0.5
    rating_max: float = 5.0
    rating_positive_min: float = 4.0
    rating_negative_max: float = 2.0

    @property
    def event_types(self) -> list[str]:
        return sorted({*self.positive_types, *self.history_types, self.rating_type})

    @model_validator(mode="after")
    def _check(self) -> FeedbackSettings:
        if self.rating_min > self.rating_max:
            raise ValueError("rating_min must not exceed rating_max")
        overlap = set(self.positive_types) & set(self.history_types)
        if overlap:
            raise ValueError(f"event types both positive and history-only: {sorted(overlap)}")
        return self


class CleanSettings(_Section):
    max_id_length: int = Field(256, ge=1)
    # A user with more events than this in one minute of one day is treated as a bot for that day.
    bot_max_events_per_minute: int = Field(100, ge=1)
    # A partition fails when quarantined-as-invalid rows exceed this share of rows read.
    max_bad_share: float = Field(0.05, ge=0.0, le=1.0)
    # Clock skew allowed past the end of a partition's day before an event counts as "in the future".
    future_tolerance_hours: float = Field(1.0, ge=0.0)
    max_text_length: int = Field(10_000, ge=1)


class SequenceSettings(_Section):
    max_len: int = Field(50, ge=1)


class OrchestrationSettings(_Section):
    """Read by the DAG files from the environment at parse time (``LLMREC_ORCHESTRATION__*``)."""

    # "asset": train after every ETL run (the sequences asset); else a cron expression or preset.
    train_schedule: str = "asset"
    # The Airflow queue of the training task (a GPU worker listens on it).
    gpu_queue: str = "default"

    @model_validator(mode="after")
    def _check(self) -> OrchestrationSettings:
        s = self.train_schedule.strip()
        if s != "asset" and not (s.startswith("@") or len(s.split()) == 5):
            raise ValueError(f"train_schedule must be 'asset', a cron preset or a 5-field cron expression, not {s!r}")
        return self


class Settings(_Section):
    home: Path = Path(".llmrec")
    warehouse_url: str | None = None
    spark: SparkSettings = Field(default_factory=SparkSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    clean: CleanSettings = Field(default_factory=CleanSettings)
    sequences: SequenceSettings = Field(default_factory=SequenceSettings)
    text: TextSettings = Field(default_factory=TextSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    rerank: RerankSettings = Field(default_factory=RerankSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)

    @property
    def raw_dir(self) -> Path:
        return self.home / "raw"

    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    def raw_table(self, table: str) -> Path:
        return self.raw_dir / table

    def lake_table(self, table: str) -> Path:
        return self.lake_dir / table

    @property
    def models_dir(self) -> Path:
        """Checkpoints and cached text vectors of training runs."""
        return self.home / "models"

    @property
    def tracking_uri(self) -> str:
        return self.tracking.tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def warehouse_target(self) -> str:
        """``postgresql://...`` when configured, else the path of the DuckDB file."""
        return self.warehouse_url or str(self.home / "warehouse.duckdb")

    @property
    def runs_dir(self) -> Path:
        """Run summaries (reconciled counts), one JSON per job and partition."""
        return self.lake_dir / "_runs"


def _parse_env_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        # Paths and URLs stay strings even when they look like YAML.
        node[parts[-1]] = raw if parts in (["home"], ["warehouse_url"]) else _parse_env_value(raw)
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_error(err: ValidationError, origin: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown setting '{key}'")
        else:
            lines.append(f"setting '{key}': {e['msg']}")
    return f"invalid configuration ({origin}): " + "; ".join(lines)


def load_settings(config: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Resolve settings from defaults, an optional YAML file and the environment."""
    environ = dict(os.environ if environ is None else environ)
    env = _env_overrides(environ)
    home = Path(env.get("home") or ".llmrec")
    path = config or environ.get("LLMREC_CONFIG")
    if path is None and (home / "llmrec.yaml").is_file():
        path = home / "llmrec.yaml"
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SettingsError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"config file {path} must hold a mapping, not {type(loaded).__name__}")
        data = loaded
    origin = f"{path} + environment" if path else "environment"
    try:
        settings = Settings.model_validate(_merge(data, env))
    except ValidationError as err:
        raise SettingsError(_format_error(err, origin)) from None
    settings.home = settings.home.expanduser().absolute()
    # $MLFLOW_TRACKING_URI overrides the default store. Read once, here: MLflow itself rewrites the
    # variable when a store is selected, which must not leak into settings resolved later.
    if settings.tracking.tracking_uri is None and environ.get("MLFLOW_TRACKING_URI"):
        settings.tracking.tracking_uri = environ["MLFLOW_TRACKING_URI"]
    return settings
