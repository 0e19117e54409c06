"""Every DAG imports cleanly, fast and light, with the attributes operators rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from llmrec_stack.airflow_env import DAGS

DAG_IDS = {"llmrec_etl", "llmrec_train", "llmrec_score", "llmrec_refresh"}
HEAVY = ("torch", "pyspark", "mlflow", "transformers", "duckdb", "pyarrow", "numpy")


@pytest.fixture(scope="module")
def dags(airflow_settings):
    from llmrec_stack.pipeline import load_dags

    return load_dags()


def test_four_dags_with_tags_docs_retries_and_timeouts(dags):
    assert DAG_IDS <= set(dags)
    for dag_id in DAG_IDS:
        dag = dags[dag_id]
        assert "llmrec" in dag.tags and len(dag.tags) >= 2, dag_id
        assert dag.doc_md and dag.doc_md.strip().startswith(f"### {dag_id}"), dag_id
        assert not dag.catchup and dag.start_date.tzinfo is not None and dag.max_active_runs == 1
        for t in dag.tasks:
            assert t.retries >= 1 or t.task_id == "data_checks", (dag_id, t.task_id)
            assert t.retry_exponential_backoff, (dag_id, t.task_id)
            assert isinstance(t.execution_timeout, timedelta), (dag_id, t.task_id)
    chain = {t.task_id: sorted(t.downstream_task_ids) for t in dags["llmrec_etl"].tasks}
    assert chain == {"wait_for_raw": ["plan"], "plan": ["clean_logs"], "clean_logs": ["build_sequences"],
                     "build_sequences": ["data_checks"], "data_checks": []}
    # Late raw data is waited for without holding a worker slot, not failed and retried.
    sensor = dags["llmrec_etl"].get_task("wait_for_raw")
    assert sensor.mode == "reschedule" and sensor.timeout == 12 * 3600 and sensor.poke_interval == 300
    clean = dags["llmrec_etl"].get_task("clean_logs")
    assert type(clean).__name__ == "SparkSubmitOperator" and clean._conn_id == "spark_default"
    train = dags["llmrec_train"].get_task("train")
    assert train.pool == "gpu" and train.execution_timeout == timedelta(hours=8)


def test_assets_connect_the_dags(dags):
    outlets = {t.task_id: [a.name for a in t.outlets] for dag in dags.values() for t in dag.tasks if t.outlets}
    assert outlets == {"data_checks": ["llmrec_sequences"], "champion": ["llmrec_champion"], "score": ["llmrec_recommendations"]}
    for dag_id in ("llmrec_train", "llmrec_score"):
        assert "llmrec_sequences" in str(dags[dag_id].timetable.asset_condition), dag_id


def test_params_are_validated(dags):
    from airflow.sdk.exceptions import ParamValidationError

    def check(dag_id, **values):
        params = dags[dag_id].params
        params.validate()  # the defaults: a scheduled DAG must be able to run without a form
        for k, v in values.items():
            params.get_param(k).resolve(v)

    check("llmrec_train", ds="1998-04-22", finetune="lora", epochs=5)
    check("llmrec_score", ds=None, model_version="3", k=50, engine="spark", force=True)
    check("llmrec_etl", ds="latest")  # one meaning everywhere: the newest day with raw events
    check("llmrec_refresh", ds="1998-04-22", until="1998-04-22T12:00:00Z", model_version="2", k=50, force=True)
    check("llmrec_refresh", until="1998-04-22 12:00")
    for dag_id, bad in (("llmrec_etl", {"ds": "22/04/1998"}), ("llmrec_train", {"ds": "1998-13-01"}), ("llmrec_score", {"ds": "newest"}), ("llmrec_train", {"finetune": "qlora"}), ("llmrec_train", {"epochs": 0}),
                        ("llmrec_score", {"k": 0}), ("llmrec_score", {"model_version": "latest"}), ("llmrec_score", {"force": "yes"}),
                        ("llmrec_refresh", {"until": "noon"}), ("llmrec_refresh", {"force": "yes"})):
        with pytest.raises(ParamValidationError, match="Failed validating"):
            check(dag_id, **bad)


def _parse_in_subprocess(path, extra_env=None) -> dict:
    """Parse one DAG file in a fresh interpreter (airflow already imported): seconds, modules."""
    code = (
        "import json, sys, time\n"
        "import airflow.sdk\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "t = time.perf_counter()\n"
        f"bag = DagBag(dag_folder={str(path)!r})\n"
        "s = time.perf_counter() - t\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "d = next(iter(bag.dags.values()), None)\n"
        "print(json.dumps({'seconds': s, 'heavy': heavy, 'errors': list(bag.import_errors.values()),"
        " 'timetable': type(d.timetable).__name__ if d else None,"
        " 'interval': getattr(getattr(d, 'timetable', None), 'delta', None) and d.timetable.delta.total_seconds()}))\n"
    )
    env = {**os.environ, **(extra_env or {})}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=DAGS)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["llmrec_etl.py", "llmrec_train.py", "llmrec_score.py", "llmrec_refresh.py"])
def test_each_dag_file_parses_in_under_two_seconds_without_heavy_imports(airflow_settings, name):
    result = _parse_in_subprocess(DAGS / name)
    assert result["errors"] == []
    assert result["seconds"] < 2.0, result
    assert result["heavy"] == [], f"{name} imports {result['heavy']} at parse time"


def test_refresh_runs_every_few_minutes_one_at_a_time(dags, airflow_settings):
    dag = dags["llmrec_refresh"]
    assert dag.max_active_runs == 1 and [t.task_id for t in dag.tasks] == ["check", "refresh"]
    assert type(dag.timetable).__name__ == "DeltaTriggerTimetable" and dag.timetable.delta == timedelta(minutes=15)
    every5 = _parse_in_subprocess(DAGS / "llmrec_refresh.py", {"LLMREC_ORCHESTRATION__REFRESH_EVERY_MINUTES": "5"})
    assert every5["errors"] == [] and every5["interval"] == 300, every5


def test_training_schedule_comes_from_configuration(airflow_settings):
    assert _parse_in_subprocess(DAGS / "llmrec_train.py")["timetable"] == "AssetTriggeredTimetable"
    weekly = _parse_in_subprocess(DAGS / "llmrec_train.py", {"LLMREC_ORCHESTRATION__TRAIN_SCHEDULE": "0 3 * * 0"})
    assert weekly["timetable"] == "CronTriggerTimetable"


def test_etl_schedule_comes_from_configuration(airflow_settings):
    assert _parse_in_subprocess(DAGS / "llmrec_etl.py")["timetable"] == "CronTriggerTimetable"
    # A lake of historical data: no scheduled run waits for a day that will never land.
    manual = _parse_in_subprocess(DAGS / "llmrec_etl.py", {"LLMREC_ORCHESTRATION__ETL_SCHEDULE": "none"})
    assert manual["errors"] == [] and manual["timetable"] == "NullTimetable", manual
