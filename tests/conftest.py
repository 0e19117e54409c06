"""Shared fixtures: one real local SparkSession for the whole run, and a throwaway LLMREC_HOME."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def spark():
    from llmrec_core.io.spark import get_spark
    from llmrec_core.settings import SparkSettings

    # Tiny inputs: compiling whole-stage code for the wide cleaning expressions costs more than
    # it saves, so the test session evaluates them without it.
    conf = {"spark.sql.codegen.wholeStage": "false"}
    session = get_spark(SparkSettings(master="local[2]", shuffle_partitions=2, driver_memory="1g", conf=conf), "llmrec-tests")
    yield session
    session.stop()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty LLMREC_HOME, set in the environment so jobs' ``main()`` pick it up."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("LLMREC_HOME", str(path))
    for name in list(os.environ):
        if (name.startswith("LLMREC_") and name != "LLMREC_HOME") or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name)
    return path


@pytest.fixture(scope="session")
def _built_homes(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("built-homes")


@pytest.fixture
def prebuilt(_built_homes, home):
    """``prebuilt(name, build)`` leaves ``home`` as ``build(home)`` does: the first test to ask
    runs ``build`` and keeps a copy, later ones get the copy (modification times kept, so the
    raw watermarks of the run summaries still match)."""
    import shutil

    def get(name: str, build) -> Path:
        saved = _built_homes / name
        if saved.is_dir():
            shutil.copytree(saved, home, symlinks=True, dirs_exist_ok=True)
        else:
            build(home)
            shutil.copytree(home, saved, symlinks=True)
        return home

    return get


@pytest.fixture
def settings(home):
    from llmrec_core.settings import load_settings

    return load_settings()


def write_raw(home: Path, table: str, ds: dt.date | str, lines: list, *, name: str = "part-0.jsonl",
              gz: bool = False, newline: bytes = b"\n", success: bool = True) -> Path:
    """Write raw lines (dicts become JSON, str/bytes are written as given) into a raw partition,
    and its ``_SUCCESS`` marker unless ``success`` is false (a producer still writing)."""
    part = home / "raw" / table / f"ds={ds}"
    part.mkdir(parents=True, exist_ok=True)
    if success:
        (part / "_SUCCESS").touch()
    body = b""
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        if isinstance(line, str):
            line = line.encode("utf-8")
        body += line + newline
    path = part / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(body) if gz else body)
    return path


def raw_frame(spark, ds: str, lines: list):
    """An in-memory raw-lines DataFrame (schemas.RAW_LINES) from dicts or strings."""
    from llmrec_core.etl.schemas import RAW_LINES

    rows = [(dt.date.fromisoformat(ds), "file:/raw/part-0.jsonl", json.dumps(x) if isinstance(x, dict) else x) for x in lines]
    return spark.createDataFrame(rows, RAW_LINES)


@pytest.fixture
def toy_home(home):
    """``home`` with the toy lake of tests/toy.py; returns (home, last day)."""
    from tests.toy import write_toy_lake

    return home, write_toy_lake(home)


@pytest.fixture
def tiny_settings(settings):
    """Settings for a tiny random-weight language model and short training."""
    from tests.toy import make_tiny

    return make_tiny(settings)


# A real throwaway PostgreSQL server (skipped where the machine has no server binaries).
from tests.postgres import postgres_db_url, postgres_server, postgres_url  # noqa: E402, F401
