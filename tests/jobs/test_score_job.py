"""The scoring job end to end on the toy lake: a trained champion scores every user and item,
the rows are validated and published to a real DuckDB file, and read back with SQL and the CLI."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import score
from llmrec_core import cli
from llmrec_core.data.snapshot import load_snapshot
from llmrec_core.io.warehouse import Warehouse
from llmrec_core.scoring import runners
from llmrec_core.scoring.validate import ValidationError
from llmrec_core.settings import load_settings
from tests.toy import isolated_home, make_tiny, train_champion, write_toy_lake

K = 5


def _add_rows(path, rows: dict) -> None:
    """Append rows to the (single-file) Parquet partition at ``path``."""
    file = next(path.glob("*.parquet"))
    table = pq.read_table(file)
    pq.write_table(pa.concat_tables([table, pa.table(rows, schema=table.schema)]), file)


def _unavailable(path, item_id: str) -> None:
    file = next(path.glob("*.parquet"))
    table = pq.read_table(file)
    avail = pa.array([i != item_id for i in table["item_id"].to_pylist()])
    pq.write_table(table.set_column(table.schema.get_field_index("available"), "available", avail), file)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, spark):
    """A toy lake whose last day also has a user known only by profile, a user with nothing,
    a brand-new item and an unavailable item, and a champion trained on it."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("score") / "home"
    home.mkdir()
    isolated_home(mp, home)
    last = write_toy_lake(home)
    lake = home / "lake"
    _add_rows(lake / "users" / f"ds={last}", {"user_id": ["u_profile", "u_bare"],
                                              "attributes": [[("occupation", "chef")], []]})
    _add_rows(lake / "items" / f"ds={last}", {"item_id": ["i_new"], "title": ["Kitchen story new"], "description": ["A cooking tale."],
                                              "categories": [["Cooking"]], "attributes": [[("kind", "story")]], "available": [True]})
    _unavailable(lake / "items" / f"ds={last}", "i5")
    settings = make_tiny(load_settings())
    settings.scoring.k, settings.scoring.similar_k, settings.scoring.audience_k = K, 3, 4
    settings.scoring.user_block = 16  # several blocks even on the toy
    settings.tracking.system_metrics = False  # the training job's test checks them
    train_champion(settings, last)
    yield home, last, settings
    mp.undo()


def _latest(home, table: str, order: str) -> pa.Table:
    """What a SQL user reads: the *_latest view of the DuckDB file."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(f"SELECT * FROM {table}_latest ORDER BY {order}").to_arrow_table()


def test_every_user_and_item_gets_valid_rows_with_reasons(trained):
    home, last, settings = trained
    out = score.run(settings, last)
    snap = load_snapshot(settings, last)
    recs = _latest(home, "user_recommendations", "user_id, rank").to_pylist()
    assert out["counts"]["user_recommendations"] == len(recs) == K * snap.n_users
    by_user: dict[str, list[dict]] = {}
    for r in recs:
        by_user.setdefault(r["user_id"], []).append(r)
    assert set(by_user) == set(snap.user_ids)
    seen = {(snap.user_ids[u], snap.item_ids[i]) for u, i in zip(snap.events.user, snap.events.item, strict=True)}
    titles = dict(zip(snap.item_ids, snap.item_titles, strict=True))
    for user, rows in by_user.items():
        assert [r["rank"] for r in rows] == list(range(1, K + 1))
        assert all(a["score"] >= b["score"] for a, b in zip(rows, rows[1:], strict=False))
        for r in rows:
            assert (user, r["item_id"]) not in seen and r["item_id"] != "i5"
            assert r["ds"] == last and r["model_version"] == out["version"] and r["run_id"] == out["run_id"]
    assert {(r["source"], r["reason"]) for r in by_user["u_profile"]} == {("cold_text", "Picked for your profile")}
    assert {(r["source"], r["reason"]) for r in by_user["u_bare"]} == {("popularity_fallback", "Popular this week")}
    # A model user's reason names an item the user rated highly.
    history = {}
    for u, i, label in zip(snap.events.user, snap.events.item, snap.events.label, strict=True):
        if label == 1:
            history.setdefault(snap.user_ids[u], set()).add(titles[snap.item_ids[i]])
    reasons = [(r["user_id"], r["reason"]) for r in recs if r["source"] in ("model", "cold_text") and r["user_id"] != "u_profile"]
    assert reasons and all(reason.startswith("Because you rated ") for _, reason in reasons)
    assert all(reason[len("Because you rated "):-len(" highly")] in history[user] for user, reason in reasons)
    assert all(r["source"] == "cold_text" for r in recs if r["item_id"] == "i_new")

    similar = _latest(home, "item_recommendations", "item_id, rank").to_pylist()
    assert {r["item_id"] for r in similar} == set(snap.item_ids)  # the brand-new item included
    assert all(r["rec_item_id"] not in (r["item_id"], "i5") for r in similar)
    audience = _latest(home, "item_audience", "item_id, rank").to_pylist()
    assert {r["item_id"] for r in audience} == set(snap.item_ids)
    assert all((r["user_id"], r["item_id"]) not in seen and r["user_id"] != "u_bare" for r in audience)
    # The Parquet copies hold the same rows.
    copy = pq.read_table(home / "lake" / "serving" / "user_recommendations" / f"ds={last}")
    assert copy.num_rows == len(recs)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:  # which model made the day
        assert con.execute("SELECT model_version, model FROM publications WHERE ds = ?", [last]).fetchall() == [(out["version"], "llmrec")]
    _check_scoring_run(settings, out["run_id"], snap, recs)


def _check_scoring_run(settings, run_id: str, snap, recs: list[dict]) -> None:
    """What the scoring run shows in MLflow: plots and coverage of the published lists, and the
    lake tables it read, with the digests of the training run that read the same day."""
    import json

    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(run_id)
    plots = {a.path: a.file_size for a in client.list_artifacts(run_id, "plots")}
    assert set(plots) == {"plots/score_distribution.png", "plots/source_mix.png", "plots/catalogue_coverage.png"}
    assert all(size > 5_000 for size in plots.values()), plots
    assert run.data.metrics["allowed_items"] == snap.n_items - 1  # i5 is unavailable
    assert run.data.metrics["catalogue_coverage"] == pytest.approx(len({r["item_id"] for r in recs}) / (snap.n_items - 1))
    assert not any(k.startswith("system/") for k in run.data.metrics)  # switched off here
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"clean_events", "items", "users"}
    assert all({t.key: t.value for t in i.tags} == {"mlflow.data.context": "scoring", "ds": str(snap.ds)} for i in inputs.values())
    assert json.loads(inputs["users"].dataset.profile) == {"num_rows": snap.n_users}
    training = client.search_runs([run.info.experiment_id], "tags.kind = 'training'")[0].info.run_id
    trained = {i.dataset.name: i.dataset.digest for i in client.get_run(training).inputs.dataset_inputs
               if {t.key: t.value for t in i.tags}["mlflow.data.context"] == "training"}
    assert trained == {name: i.dataset.digest for name, i in inputs.items()}


def test_spark_engine_publishes_the_same_rows_and_reruns_replace(trained, spark):
    home, last, settings = trained
    local = score.run(settings, last)
    tables = {t: _latest(home, t, o) for t, o in (("user_recommendations", "user_id, rank"), ("item_audience", "item_id, rank"))}
    settings_spark = settings.model_copy(deep=True)
    settings_spark.scoring.engine, settings_spark.scoring.users_per_partition = "spark", 20
    distributed = score.run(settings_spark, last, spark=spark)
    assert distributed["counts"] == local["counts"]
    for table, order in (("user_recommendations", "user_id, rank"), ("item_audience", "item_id, rank")):
        again = _latest(home, table, order)
        keep = [c for c in again.column_names if c not in ("score", "run_id")]
        assert again.select(keep).equals(tables[table].select(keep)), table
        assert np.allclose(again["score"].to_numpy(), tables[table]["score"].to_numpy(), atol=1e-4)
    with Warehouse.open(settings) as wh:
        assert wh.published_days() == [last]


def test_filters_and_rerank_apply_to_every_row(trained):
    home, last, settings = trained
    s = settings.model_copy(deep=True)
    s.scoring.filters.exclude_categories = ["Horror"]
    s.scoring.rerank = "on"
    out = score.run(s, last)
    assert out["reranked"]
    snap = load_snapshot(s, last)
    horror = {i for i, t in zip(snap.item_ids, snap.item_titles, strict=True) if t.startswith("Haunted")}
    recs = _latest(home, "user_recommendations", "user_id, rank").to_pylist()
    assert len(recs) == K * snap.n_users and not {r["item_id"] for r in recs} & horror
    assert not {r["rec_item_id"] for r in _latest(home, "item_recommendations", "item_id").to_pylist()} & horror


def test_a_failed_check_publishes_nothing_and_exits_non_zero(trained, monkeypatch, capsys):
    home, last, settings = trained
    good = score.run(settings, last)
    real = runners.run_local

    def broken(inputs):
        recs, audience = real(inputs)
        item = recs["item"].to_numpy().copy()
        user0 = int(recs["user"][0].as_py())
        item[0] = int(inputs.history.items(user0)[0])  # recommend something user 0 already saw
        return recs.set_column(2, "item", pa.array(item, pa.int32())), audience

    monkeypatch.setattr(runners, "run_local", broken)
    with pytest.raises(ValidationError, match=r"user_recommendations: no already-seen items failed for 1 rows"):
        score.run(settings, last)
    assert cli.main(["score", "--ds", str(last)]) == 1
    assert "nothing published" in capsys.readouterr().err
    rows = _latest(home, "user_recommendations", "user_id, rank")
    assert rows.num_rows == good["counts"]["user_recommendations"] and set(rows["run_id"].to_pylist()) == {good["run_id"]}


def test_cli_reads_recommendations_and_similar_items_back(trained, capsys):
    home, last, settings = trained
    # The toy lake has no raw partitions: `latest` (the newest day with raw events) says so.
    assert cli.main(["score"]) == 1
    assert "no raw events partitions under" in capsys.readouterr().err
    assert cli.main(["score", "--ds", str(last)]) == 0
    assert "user_recommendations" in capsys.readouterr().out
    assert cli.main(["recommend", "--user", "u1", "--k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"Recommendations for user u1, {last}") and len(lines) == 4
    assert all("story" in line and "score" in line and "Because you rated" in line for line in lines[1:])
    assert cli.main(["similar", "--item", "i_new", "--ds", str(last), "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "Items similar to i_new (Kitchen story new)" in out and len(out.strip().splitlines()) == 4
    assert cli.main(["recommend", "--user", "nobody"]) == 1
    assert "no rows for user 'nobody'" in capsys.readouterr().err
    assert cli.main(["score", "--ds", str(last), "--model-version", "99"]) == 1
    assert "no model version 99" in capsys.readouterr().err


def test_scoring_publishes_to_postgres(trained, postgres_db_url):
    home, last, settings = trained
    s = settings.model_copy(deep=True)
    s.warehouse_url = postgres_db_url
    out = score.run(s, last)
    assert out["warehouse"].startswith("postgres postgresql://127.0.0.1:")
    with Warehouse.open(s) as wh:
        assert wh.published_days() == [last] and wh.counts(last) == out["counts"]
        bare = wh.user_recommendations("u_bare", k=K)
        assert [r["rank"] for r in bare] == list(range(1, K + 1))
        assert {(r["source"], r["reason"]) for r in bare} == {("popularity_fallback", "Popular this week")}
        assert len(wh.similar_items("i_new", k=3)) == 3 and len(wh.audience("i_new", k=2)) == 2
