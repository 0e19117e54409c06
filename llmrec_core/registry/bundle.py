"""The trained artifact of one training run, as files in a directory.

- ``model.pt``: the serving model (refit on everything up to D), as its ``export()`` dict (with
  a ``kind``: any recommender of :mod:`llmrec_core.recommenders.portable` can be served);
- ``gate.pt``: the validation model (trained before the validation window), which the
  promotion gate re-evaluates later without leakage;
- ``reranker.pt``: the cross-encoder weights, when one was trained;
- ``meta.json``: ds, data counts, metrics, settings.

MLflow stores this directory as the artifacts of the registered pyfunc model.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from llmrec_core.io import tracking
from llmrec_core.settings import Settings


@dataclass
class Bundle:
    model: dict
    gate: dict
    reranker: dict | None
    meta: dict


def save_bundle(path: Path, bundle: Bundle) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    torch.save(bundle.model, path / "model.pt")
    torch.save(bundle.gate, path / "gate.pt")
    if bundle.reranker is not None:
        torch.save(bundle.reranker, path / "reranker.pt")
    (path / "meta.json").write_text(json.dumps(bundle.meta, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return path


def load_bundle(path: str | Path, *, gate: bool = True) -> Bundle:
    path = Path(path)

    def load(name: str) -> dict | None:
        f = path / name
        return torch.load(f, map_location="cpu", weights_only=False) if f.is_file() else None

    return Bundle(
        model=load("model.pt"),
        gate=load("gate.pt") if gate else None,
        reranker=load("reranker.pt"),
        meta=json.loads((path / "meta.json").read_text(encoding="utf-8")),
    )


def register(settings: Settings, bundle: Bundle, example, tags: dict[str, str]) -> str:
    """Save the bundle, log it as the pyfunc model of the active run and register it; returns
    the new version."""
    from llmrec_core.registry.pyfunc import SIGNATURE, LlmrecPyfunc

    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = save_bundle(Path(tmp) / "bundle", bundle)
        return tracking.register_bundle(bundle_dir, settings, example, tags, python_model=LlmrecPyfunc(), signature=SIGNATURE)
