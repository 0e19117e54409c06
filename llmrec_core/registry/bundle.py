"""The trained artifact of one training run, as files in a directory.

- ``model``: the serving model (refit on everything up to D), as its ``export()`` dict (with
  a ``kind``: any recommender of :mod:`llmrec_core.recommenders.portable` can be served);
- ``gate``: the validation model (trained before the validation window), which the
  promotion gate re-evaluates later without leakage;
- ``reranker``: the cross-encoder weights, when one was trained;
- ``catalogue``: what the served pyfunc needs of day D's catalogue beyond the model (titles,
  which items may be recommended, the popularity fallback): :func:`catalogue`;
- ``meta.json``: ds, data counts, metrics, settings.

Each model is a ``.safetensors`` file of tensors and a ``.json`` file of everything else
(:mod:`llmrec_core.io.tensorfile`). Nothing in a bundle is a pickle, and :func:`load_bundle`
refuses a directory that holds anything but these files, so a forged registry version cannot
run code in scoring, the gate or the pyfunc.

MLflow stores this directory as the artifacts of the registered pyfunc model.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmrec_core.data import interactions  # noqa: F401  (registers the data classes a bundle stores)
from llmrec_core.data.snapshot import Snapshot, load_item_facets
from llmrec_core.io import tensorfile, tracking
from llmrec_core.settings import Settings


@dataclass
class Bundle:
    model: dict
    gate: dict
    reranker: dict | None
    meta: dict
    catalogue: dict | None = None  # absent in versions registered before the pyfunc recommended


PARTS = ("model", "gate", "reranker", "catalogue")
ALLOWED = {"meta.json", *(f"{part}{suffix}" for part in PARTS for suffix in tensorfile.SUFFIXES)}


def save_bundle(path: Path, bundle: Bundle) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    tensorfile.save(bundle.model, path / "model")
    tensorfile.save(bundle.gate, path / "gate")
    for name in ("reranker", "catalogue"):
        if getattr(bundle, name) is not None:
            tensorfile.save(getattr(bundle, name), path / name)
    (path / "meta.json").write_text(json.dumps(bundle.meta, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return path


def load_bundle(path: str | Path, *, gate: bool = True) -> Bundle:
    """The bundle in ``path``; :class:`tensorfile.UnsafeFileError` when the directory holds
    any file but a bundle's own (a pickle, most of all), before anything is read."""
    path = Path(path)
    foreign = sorted(p.name for p in path.iterdir() if p.name not in ALLOWED) if path.is_dir() else []
    if foreign or not tensorfile.exists(path / "model") or not (path / "meta.json").is_file():
        raise tensorfile.UnsafeFileError(
            f"refusing to load the model bundle in {path}: "
            + (f"unexpected file(s) {foreign} (llmrec stores models as safetensors and JSON, never pickles)" if foreign
               else "it has no model.safetensors/model.json and meta.json")
            + "; a version registered by an older llmrec must be retrained (llmrec train)")

    def load(name: str) -> dict | None:
        return tensorfile.load(path / name) if tensorfile.exists(path / name) else None

    return Bundle(
        model=load("model"),
        gate=load("gate") if gate else None,
        reranker=load("reranker"),
        meta=json.loads((path / "meta.json").read_text(encoding="utf-8")),
        catalogue=load("catalogue"),
    )


def catalogue(settings: Settings, snap: Snapshot) -> dict:
    """Day D's catalogue as the nightly scoring job sees it, for the pyfunc, which has no lake:
    every item's ID and title, which may be recommended (available and passing
    ``scoring.filters``) and the popularity fallback (allowed items by positive events of the
    last ``scoring.popular_days``, with their shares)."""
    from llmrec_core.scoring.filters import allowed_items
    from llmrec_core.scoring.inputs import popularity

    categories, attributes = load_item_facets(settings, snap.ds)
    allowed = snap.item_available & allowed_items(settings.scoring.filters, categories, attributes)
    popular, shares = popularity(snap, allowed, settings.scoring.popular_days)
    return {"item_ids": list(snap.item_ids), "titles": list(snap.item_titles), "allowed": allowed,
            "popular": popular.astype(np.int64), "popular_shares": shares.astype(np.float64)}


def register(settings: Settings, bundle: Bundle, example, tags: dict[str, str]) -> str:
    """Save the bundle, log it as the pyfunc model of the active run and register it; returns
    the new version."""
    from llmrec_core.registry.pyfunc import SIGNATURE

    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = save_bundle(Path(tmp) / "bundle", bundle)
        return tracking.register_bundle(bundle_dir, settings, example, tags, python_model=Path(__file__).with_name("pyfunc_model.py"), signature=SIGNATURE)
