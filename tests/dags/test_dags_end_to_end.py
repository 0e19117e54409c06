"""The three DAGs end to end through ``dag.test()`` on small synthetic logs and a tiny model,
then the warehouse tables; a failed task fails the DAG run; no champion means a skipped run."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from llmrec_core.errors import LlmrecError

K = 4
TINY = {
    "model": {"encoder": "random:32x2", "dim": 16, "max_len": 8, "max_text_tokens": 16},
    "train": {"epochs": 2, "patience": 2, "batch_size": 32, "lr": 0.005, "negatives": 16, "validation_days": 3},
    "evaluation": {"als_rank": 4, "als_iterations": 2, "als_rank_grid": [4], "als_reg_grid": [0.05], "als_alpha_grid": [10.0]},
    "spark": {"master": "local[2]", "shuffle_partitions": 2, "driver_memory": "1g"},
    "scoring": {"similar_k": 3, "audience_k": 3},
}


@pytest.fixture(scope="module")
def world(airflow_settings):
    """Synthetic raw logs for 12 days in the DAG tests' home, and tiny-model settings there."""
    from llmrec_core.ingest.synthetic import SyntheticSpec, generate
    from llmrec_stack.pipeline import load_dags

    settings = airflow_settings
    (settings.home / "llmrec.yaml").write_text(yaml.safe_dump(TINY))
    generate(settings.raw_dir, SyntheticSpec(users=50, items=30, events=1500, seed=3, days=12, start=dt.date(2024, 3, 1)))
    return settings, dt.date(2024, 3, 12), load_dags()


def _fast_fail(dag):
    """No retries: dag.test() waits out retry delays, and this failure is not transient."""
    for t in dag.tasks:
        t.retries = 0
    return dag


def test_scoring_before_any_champion_is_skipped_not_failed(world):
    from llmrec_stack.pipeline import run_dag

    settings, last, dags = world
    states = run_dag(dags["llmrec_score"], {"ds": str(last)}, settings.home / "score-first.log")
    assert states == {"champion_exists": "skipped", "score": "skipped"}
    states = run_dag(dags["llmrec_refresh"], {"ds": str(last)}, settings.home / "refresh-first.log")
    assert states == {"check": "skipped", "refresh": "skipped"}


def test_etl_train_score_publish_every_user(world, capfd):
    from llmrec_core.data.snapshot import load_snapshot
    from llmrec_core.io.warehouse import Warehouse
    from llmrec_stack.pipeline import run_pipeline

    settings, last, _ = world
    states = run_pipeline(settings, last, score_conf={"k": K})
    assert set(states["llmrec_etl"].values()) == {"success"} and len(states["llmrec_etl"]) == 5  # the sensor found the day ready
    assert set(states["llmrec_train"].values()) == {"success"} and set(states["llmrec_score"].values()) == {"success"}
    # The ETL run for the last day backfilled all 12 never-cleaned days in one application.
    assert len(list((settings.lake_table("clean_events")).glob("ds=*"))) == 12
    snap = load_snapshot(settings, last)
    with Warehouse.open(settings) as wh:
        assert wh.published_days() == [last]
        counts = wh.counts(last)
        assert counts["user_recommendations"] == K * snap.n_users
        assert counts["item_recommendations"] == 3 * snap.n_items
        rows = wh.user_recommendations(str(snap.user_ids[0]), k=K)
    assert [r["rank"] for r in rows] == list(range(1, K + 1)) and all(r["reason"] for r in rows)
    # The summary names the version that serves, which model it is and why it was promoted.
    from llmrec_core.io import tracking
    from llmrec_stack.report import serving_line

    champion = tracking.champion(settings)
    assert rows[0]["model_version"] == str(champion.version)
    assert serving_line(settings) == (f"Serving llmrec@champion = version {champion.version} ({champion.tags['model']}), "
                                      f"{champion.tags['promotion']}")
    assert champion.tags["promotion"].startswith("promoted: first champion")
    # The terminal shows each task as it starts and ends, with its duration and what it did.
    out = capfd.readouterr().out
    for line in ("  llmrec_etl.clean_logs success in ", f"s: events of {last}: ", "  llmrec_etl.build_sequences success in ",
                 "  llmrec_train.train success in ", "s: validation NDCG@10: llmrec 0.",
                 "  llmrec_score.score success in ", f"s: published user_recommendations {counts['user_recommendations']:,}, "):
        assert line in out, f"{line!r} not in:\n{out}"
    assert out.count(" ...\n") == out.count(" success in ") + out.count(" skipped in "), out


def test_refresh_runs_when_a_file_lands_and_skips_when_nothing_new_has(world, request):
    import shutil

    import duckdb

    from llmrec_core.data.snapshot import load_snapshot
    from llmrec_stack.pipeline import run_dag
    from tests.conftest import write_raw

    settings, last, dags = world
    today = last + dt.timedelta(days=1)
    log = settings.home / "refresh.log"
    assert run_dag(dags["llmrec_refresh"], {"ds": str(today)}, log) == {"check": "skipped", "refresh": "skipped"}  # nothing landed
    snap = load_snapshot(settings, last)
    users, items = [str(u) for u in snap.user_ids[:3]], [str(i) for i in snap.item_ids[:2]]
    landed = write_raw(settings.home, "events", today, [{"user_id": u, "item_id": i, "event_type": "click", "ts": f"{today}T08:0{n}:00Z"}
                                                         for n, (u, i) in enumerate((u, i) for u in users for i in items)])
    request.addfinalizer(lambda: shutil.rmtree(landed.parent))  # other tests expect `latest` to be the last ETL day
    assert run_dag(dags["llmrec_refresh"], {"ds": str(today), "k": K}, log) == {"check": "success", "refresh": "success"}
    assert run_dag(dags["llmrec_refresh"], {"ds": str(today), "k": K}, log) == {"check": "skipped", "refresh": "skipped"}
    assert run_dag(dags["llmrec_refresh"], {"ds": str(today), "k": K, "force": True}, log) == {"check": "success", "refresh": "success"}
    with duckdb.connect(str(settings.home / "warehouse.duckdb"), read_only=True) as con:
        fresh = con.sql("SELECT user_id, count(*), min(fresh_events) FROM user_recommendations_current"
                        " WHERE refreshed_at IS NOT NULL GROUP BY user_id ORDER BY user_id").fetchall()
    assert fresh == [(u, K, 2) for u in sorted(users)]


def test_a_failing_task_fails_the_dag_run(world):
    from llmrec_stack.pipeline import run_dag

    settings, last, dags = world
    with pytest.raises(LlmrecError, match=r"(?s)llmrec_score run .* failed; failed tasks: score\..*no model version 99") as err:
        run_dag(_fast_fail(dags["llmrec_score"]), {"ds": str(last), "model_version": "99"}, settings.home / "score-fail.log")
    assert "Last lines of" in str(err.value)


def _sequences_events() -> list:
    """Every event of the sequences asset in the metadata DB, oldest first."""
    from airflow import settings as airflow_settings
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    with airflow_settings.Session() as session:
        query = (select(AssetEvent).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                 .where(AssetModel.name == "llmrec_sequences").order_by(AssetEvent.timestamp, AssetEvent.id))
        events = list(session.scalars(query))
        session.expunge_all()
    return events


def test_training_and_scoring_use_the_day_the_etl_produced(world):
    """An ETL run of the last day, then a rerun of an older day: each asset event carries its
    day, and a run triggered by those events trains and scores that day, not the newest snapshot."""
    from llmrec_core.orchestration.assets import SEQUENCES
    from llmrec_core.orchestration.tasks import produced_day
    from llmrec_stack.pipeline import run_dag

    settings, last, dags = world
    older = last - dt.timedelta(days=2)
    if not _sequences_events():  # the pipeline test ran the last day's ETL already, unless it was deselected
        run_dag(dags["llmrec_etl"], {"ds": str(last)}, settings.home / f"etl-{last}.log")
    run_dag(dags["llmrec_etl"], {"ds": str(older)}, settings.home / f"etl-{older}.log")
    events = _sequences_events()[-2:]
    assert [e.extra["ds"] for e in events] == [str(last), str(older)]
    assert all(e.extra["users"] > 0 and e.extra["items"] > 0 for e in events)
    # Each run consumes the events since the previous one; the rerun of the older day wins.
    assert [produced_day(None, {SEQUENCES: [e]}) for e in events] == [last, older]
    assert produced_day(None, {SEQUENCES: events}) == older
    # A manual run takes its param; with neither, `latest` (the newest raw day).
    assert produced_day(str(last), {SEQUENCES: events}) == last
    assert produced_day(None, None) == last
