"""Fixtures the fault tests share."""

from __future__ import annotations

import pytest


@pytest.fixture
def toy_registry(toy_home, settings):
    """The toy lake with MLflow set up on it: (settings, last day, snapshot of the last day)."""
    from llmrec_core.data.snapshot import load_snapshot
    from llmrec_core.io import tracking

    _, last = toy_home
    tracking.setup(settings)
    return settings, last, load_snapshot(settings, last)
