"""The warehouse fixtures of tests/io: a fresh warehouse of each backend, DuckDB and Postgres."""

from __future__ import annotations

import pytest

from llmrec_core.settings import load_settings


@pytest.fixture(params=["duckdb", "postgres"])
def wh_env(request, tmp_path) -> dict[str, str]:
    """The environment of a fresh warehouse of each backend."""
    env = {"LLMREC_HOME": str(tmp_path / "home")}
    if request.param == "postgres":
        env["LLMREC_WAREHOUSE_URL"] = request.getfixturevalue("postgres_db_url")
    return env


@pytest.fixture
def wh_settings(wh_env):
    return load_settings(environ=wh_env)
