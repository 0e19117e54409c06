"""What the pyfunc tests share: a toy world in its own LLMREC_HOME, and registering a fitted
recommender as the training job does (the bundle with its meta and day D's catalogue)."""

from __future__ import annotations

import pytest

from llmrec_core.data.snapshot import load_snapshot
from llmrec_core.io import tracking
from llmrec_core.registry import bundle
from llmrec_core.registry.pyfunc import input_example
from llmrec_core.settings import load_settings
from tests.toy import isolated_home, make_tiny, write_toy_lake


def toy_world(tmp_path_factory, name: str):
    """(monkeypatch to undo, tiny settings, snapshot of the last day) on a fresh toy lake, with
    MLflow set up there."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp(name) / "home"
    home.mkdir()
    isolated_home(mp, home)
    last = write_toy_lake(home)
    settings = make_tiny(load_settings())
    tracking.setup(settings)
    return mp, settings, load_snapshot(settings, last)


def register(settings, snap, rec) -> str:
    """Register ``rec`` (fitted on ``snap``) as a new version of ``llmrec``; returns the version."""
    meta = {"ds": str(snap.ds), "model": rec.name, "settings": settings.model_dump(mode="json")}
    made = bundle.Bundle(rec.export(), rec.export(), None, meta, bundle.catalogue(settings, snap))
    with tracking.run(f"register {rec.name}"):
        return bundle.register(settings, made, input_example(list(snap.item_ids[:5])), {"model": rec.name})
