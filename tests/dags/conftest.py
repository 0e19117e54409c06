"""One migrated Airflow metadata DB (SQLite) for the DAG tests, in a temp LLMREC_HOME.

Airflow reads its configuration when first imported, so the environment is set here, before
any test imports it, and restored afterwards.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def airflow_settings(tmp_path_factory):
    from llmrec_core.settings import load_settings
    from llmrec_stack.pipeline import setup

    saved = dict(os.environ)
    home = tmp_path_factory.mktemp("airflow") / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith(("LLMREC_", "AIRFLOW")) or name == "MLFLOW_TRACKING_URI":
            del os.environ[name]
    os.environ["LLMREC_HOME"] = str(home)
    settings = load_settings()
    setup(settings)
    yield settings
    os.environ.clear()
    os.environ.update(saved)
