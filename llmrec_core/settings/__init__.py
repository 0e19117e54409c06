"""Typed settings for every llmrec component.

Resolution order (later wins): defaults below -> YAML file -> environment.

- YAML: ``--config PATH``, else ``$LLMREC_CONFIG``, else ``$LLMREC_HOME/llmrec.yaml`` if present.
- Environment: ``LLMREC_<KEY>`` for top-level keys, ``LLMREC_<SECTION>__<KEY>`` for nested ones,
  e.g. ``LLMREC_CLEAN__MAX_BAD_SHARE=0.1``. Values are parsed as YAML scalars/lists.

Unknown keys, in the file or the environment, are an error that names the key.
Every path derives from ``home`` (``$LLMREC_HOME``, default ``./.llmrec``).

One module per component: ``data`` (Spark, feedback, cleaning, sequences), ``text``, ``model``
(model, training, re-ranker), ``evaluation``, ``tracking``, ``serving`` (scoring, warehouse),
``orchestration``. This module holds the root :class:`Settings` and how it is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_serializer

from llmrec_core.settings.base import Section, SettingsError, check_identifier, redact_url
from llmrec_core.settings.data import (
    CleanSettings,
    FeedbackSettings,
    SequenceSettings,
    SparkSettings,
)
from llmrec_core.settings.evaluation import EvaluationSettings
from llmrec_core.settings.model import ModelSettings, RerankSettings, TrainSettings
from llmrec_core.settings.orchestration import OrchestrationSettings
from llmrec_core.settings.serving import (
    FilterSettings,
    RefreshSettings,
    ScoringSettings,
    WarehouseSettings,
)
from llmrec_core.settings.text import TextSettings
from llmrec_core.settings.tracking import TrackingSettings

__all__ = [
    "CleanSettings", "EvaluationSettings", "FeedbackSettings", "FilterSettings", "ModelSettings", "OrchestrationSettings",
    "RefreshSettings", "RerankSettings", "ScoringSettings", "Section", "SequenceSettings", "Settings", "SettingsError", "SparkSettings",
    "TextSettings", "TrackingSettings", "TrainSettings", "WarehouseSettings", "check_identifier", "load_settings",
    "private_files", "redact_url",
]

ENV_PREFIX = "LLMREC_"
# Environment variables with the prefix that are not settings keys.
RESERVED_ENV = {"LLMREC_CONFIG"}


class Settings(Section):
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
    refresh: RefreshSettings = Field(default_factory=RefreshSettings)
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)

    # Every dump (``llmrec config``, MLflow params, a bundle's meta.json) shows URLs without
    # their passwords; code that connects reads the attribute itself.
    @field_serializer("warehouse_url")
    def _redact(self, url: str | None) -> str | None:
        return redact_url(url)

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


PRIVATE_UMASK = 0o077


def private_files(home: Path | None = None) -> None:
    """From here on, files and directories this process (and what it starts) creates are its
    owner's only (0600/0700), whatever the user's umask; ``home`` itself becomes 0700. Every
    llmrec entry point calls it, so user data and metadata under ``$LLMREC_HOME`` (the lake,
    the MLflow store and artifacts, the warehouse, logs) are never readable by other users."""
    os.umask(PRIVATE_UMASK)
    if home is not None:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(home, 0o700)


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
