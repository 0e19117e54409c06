"""The serving warehouse on a real DuckDB file and a real PostgreSQL server (tests/io/conftest.py).

Run: ``python -m pytest tests/io -q``. The Postgres cases are skipped on a machine without
PostgreSQL binaries; everything else runs on DuckDB alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmrec_core.errors import LlmrecError
from llmrec_core.io import serving_schema as tables
from llmrec_core.io.warehouse import PublishError, Warehouse, write_parquet_copies
from llmrec_core.io.warehouse_sql import quote_ident
from llmrec_core.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]
D1, D2, D3, D4, D5 = (dt.date(2024, 3, d) for d in range(1, 6))
META = {"run_id": "run-1", "model_name": "llmrec", "model_version": "7", "model": "llmrec"}


def day_tables(ds: dt.date, users: int = 3, items: int = 4, k: int = 3, tag: str = "a", shuffle: bool = False):
    """Valid serving tables of one day: k rows per user and per item (k < items, k <= users)."""
    user_rows = [
        {"ds": ds, "user_id": f"u{u}", "rank": r, "item_id": f"i{(u + r) % items}", "score": 1.0 - r / 10,
         "reason": f"{tag}: because of i{u}", "source": "model", "model_name": "llmrec", "model_version": tag,
         "run_id": f"run-{tag}"}
        for u in range(users) for r in range(1, k + 1)
    ]
    item_rows = [
        {"ds": ds, "item_id": f"i{i}", "rank": r, "rec_item_id": f"i{(i + r) % items}", "score": 1.0 - r / 10,
         "model_version": tag}
        for i in range(items) for r in range(1, k + 1)
    ]
    audience_rows = [
        {"ds": ds, "item_id": f"i{i}", "rank": r, "user_id": f"u{(i + r) % users}", "score": 1.0 - r / 10,
         "model_version": tag}
        for i in range(items) for r in range(1, min(k, users) + 1)
    ]
    out = {}
    for name, rows in (("user_recommendations", user_rows), ("item_recommendations", item_rows),
                       ("item_audience", audience_rows)):
        if shuffle:
            random.Random(0).shuffle(rows)
        out[name] = pa.Table.from_pylist(rows, tables.SCHEMAS[name])
    return out


def sizes(day: dict[str, pa.Table]) -> dict[str, int]:
    return {name: t.num_rows for name, t in day.items()}


def sql_rows(settings, query: str, params: tuple = ()) -> list[tuple]:
    """Run one query straight on the warehouse, outside the code under test."""
    if settings.warehouse_url:
        import psycopg

        with psycopg.connect(settings.warehouse_url, autocommit=True) as conn:
            return conn.execute(query, params or None).fetchall()
    conn = duckdb.connect(settings.warehouse_target)
    try:
        return conn.execute(query.replace("%s", "?"), list(params) or None).fetchall()
    finally:
        conn.close()


def test_publish_and_read_back(wh_settings):
    first, second = day_tables(D1), day_tables(D2, users=4, items=5, k=4, tag="b", shuffle=True)
    with Warehouse.open(wh_settings) as wh:
        assert wh.kind == ("postgres" if wh_settings.warehouse_url else "duckdb")
        assert (wh.latest_ds(), wh.published_days(), wh.user_recommendations("u0")) == (None, [], [])
        assert wh.publish(D1, first, **META, keep_days=30) == sizes(first)
        assert wh.publish(D2, second, **META, keep_days=30) == sizes(second)

    with Warehouse.open(wh_settings) as wh:  # a new connection sees what was committed
        assert wh.latest_ds() == D2
        assert wh.published_days() == [D1, D2]
        assert wh.counts(D1) == sizes(first) and wh.counts(D2) == sizes(second) and wh.counts(D3) == {}

        latest = wh.user_recommendations("u1")
        assert [(r["ds"], r["rank"], r["item_id"]) for r in latest] == [(D2, r, f"i{(1 + r) % 5}") for r in range(1, 5)]
        assert latest[0]["score"] == pytest.approx(0.9) and latest[0]["reason"] == "b: because of i1"
        assert set(latest[0]) == set(tables.USER_RECOMMENDATIONS.names)
        assert [r["rank"] for r in wh.user_recommendations("u1", k=2)] == [1, 2]

        older = wh.user_recommendations("u1", ds=D1)
        expected = [(D1, f"i{(1 + r) % 4}", "a") for r in (1, 2, 3)]
        assert [(r["ds"], r["item_id"], r["model_version"]) for r in older] == expected
        assert wh.user_recommendations("u1", ds=D1.isoformat()) == older
        assert wh.user_recommendations("u3", ds=D1) == [] and wh.user_recommendations("nobody") == []

        similar = wh.similar_items("i2")
        expected = [(D2, r, f"i{(2 + r) % 5}") for r in range(1, 5)]
        assert [(r["ds"], r["rank"], r["rec_item_id"]) for r in similar] == expected
        assert [r["rec_item_id"] for r in wh.similar_items("i2", ds=D1, k=2)] == ["i3", "i0"]
        audience = wh.audience("i0", k=3)
        assert [(r["ds"], r["rank"], r["user_id"]) for r in audience] == [(D2, r, f"u{r % 4}") for r in (1, 2, 3)]
        with pytest.raises(ValueError, match="k must be"):
            wh.audience("i0", k=0)


def test_rerun_of_a_day_replaces_it(wh_settings):
    with Warehouse.open(wh_settings) as wh:
        wh.publish(D1, day_tables(D1, users=4), **META, keep_days=30)
        again = day_tables(D1, users=2, tag="rerun")
        counts = wh.publish(D1, again, run_id="run-2", model_name="llmrec", model_version="8", model="ease", keep_days=30)
        assert counts == sizes(again)
        assert wh.published_days() == [D1]
        assert wh.counts(D1) == sizes(again)
        assert wh.user_recommendations("u3") == []
        assert {r["run_id"] for r in wh.user_recommendations("u0")} == {"run-rerun"}
    pubs = sql_rows(wh_settings, "SELECT ds, run_id, model_version, rows_user_recommendations, model FROM publications")
    assert pubs == [(D1, "run-2", "8", 6, "ease")]


def test_retention_counts_from_the_newest_day_and_backfills_keep_newer_days(wh_settings):
    with Warehouse.open(wh_settings) as wh:
        for day in (D1, D2, D3, D4, D5):
            wh.publish(day, day_tables(day, tag=day.isoformat()), **META, keep_days=2)
        assert wh.published_days() == [D3, D4, D5]
        assert wh.counts(D1) == {} and wh.user_recommendations("u0", ds=D2) == []

        wh.publish(D4, day_tables(D4, users=2, tag="backfill"), **META, keep_days=2)
        assert wh.published_days() == [D3, D4, D5]
        assert wh.latest_ds() == D5 and wh.counts(D5) == sizes(day_tables(D5))
        assert wh.user_recommendations("u0")[0]["model_version"] == D5.isoformat()

        # A day older than the retention window is dropped again; the newer days stay.
        wh.publish(D1, day_tables(D1), **META, keep_days=2)
        assert wh.published_days() == [D3, D4, D5]
    per_day = sql_rows(wh_settings, "SELECT ds, count(*) FROM item_audience GROUP BY ds ORDER BY ds")
    assert [day for day, _ in per_day] == [D3, D4, D5]


def test_latest_views_show_only_the_newest_published_day(wh_settings):
    with Warehouse.open(wh_settings) as wh:
        wh.publish(D2, day_tables(D2, users=4), **META, keep_days=30)
        wh.publish(D1, day_tables(D1), **META, keep_days=30)  # a backfill, published last
        expected = wh.counts(D2)
        assert wh.user_recommendations("u0")[0]["ds"] == D2
    for name in tables.SCHEMAS:
        rows = sql_rows(wh_settings, f"SELECT ds, count(*) FROM {name}_latest GROUP BY ds")
        assert rows == [(D2, expected[name])]


def _duplicate_rank(day):
    rows = day["user_recommendations"].to_pylist()
    rows[1]["rank"] = rows[0]["rank"]  # same user, different item
    return "user_recommendations", rows, 2


def _duplicate_pair(day):
    rows = day["item_recommendations"].to_pylist()
    rows[1]["rec_item_id"] = rows[0]["rec_item_id"]  # same item, different rank
    return "item_recommendations", rows, 2


def _null(day):
    rows = day["item_audience"].to_pylist()
    rows[0]["user_id"] = rows[4]["score"] = None
    return "item_audience", rows, 2


def _wrong_ds(day):
    rows = day["user_recommendations"].to_pylist()
    for row in rows[:3]:
        row["ds"] = D1
    return "user_recommendations", rows, 3


@pytest.mark.parametrize("check, breaks", [
    ("duplicate_rank", _duplicate_rank), ("duplicate_pair", _duplicate_pair), ("null", _null), ("ds", _wrong_ds),
    ("row_count", None),
])
def test_a_failed_check_publishes_nothing(wh_settings, monkeypatch, check, breaks):
    good = day_tables(D2, users=4)
    bad = dict(good)
    with Warehouse.open(wh_settings) as wh:
        wh.publish(D1, day_tables(D1), **META, keep_days=30)
        before = wh.counts(D1)
        if breaks is None:
            # The load itself loses a row: only the staged row count can tell.
            table, count = "item_recommendations", 1
            stage = Warehouse._stage
            monkeypatch.setattr(Warehouse, "_stage",
                                lambda self, name, t: stage(self, name, t.slice(1) if name == table else t))
        else:
            table, rows, count = breaks(good)
            bad[table] = pa.Table.from_pylist(rows, tables.SCHEMAS[table])
        with pytest.raises(PublishError) as err:
            wh.publish(D2, bad, **META, keep_days=30)
        assert f"{table}: {check}: {count} rows" in str(err.value)
        assert [(c, t, n) for c, t, n, _ in err.value.failures] == [(check, table, count)]
        assert wh.latest_ds() == D1 and wh.published_days() == [D1]
        assert wh.counts(D1) == before and wh.counts(D2) == {}
        assert wh.user_recommendations("u0")[0]["ds"] == D1
        monkeypatch.undo()
        # Nothing of the refused attempt is left behind in this connection either.
        assert wh.publish(D2, good, **META, keep_days=30) == sizes(good)
        assert wh.latest_ds() == D2
    assert sql_rows(wh_settings, "SELECT count(*) FROM user_recommendations WHERE ds = %s", (D2,)) == [(12,)]


def test_tables_that_do_not_match_the_serving_schemas_are_refused(tmp_path):
    settings = load_settings(environ={"LLMREC_HOME": str(tmp_path)})
    day = day_tables(D1)
    with Warehouse.open(settings) as wh:
        with pytest.raises(PublishError, match="user_recommendations: schema: missing columns \\['reason'\\]"):
            wh.publish(D1, {**day, "user_recommendations": day["user_recommendations"].drop_columns(["reason"])},
                       **META, keep_days=30)
        with pytest.raises(PublishError, match="item_audience: tables"):
            wh.publish(D1, {k: v for k, v in day.items() if k != "item_audience"}, **META, keep_days=30)
        assert wh.published_days() == []
        # Columns in another order and a wider integer type are conformed, not refused.
        reordered = day["item_audience"].select(["rank", "user_id", "ds", "item_id", "score", "model_version"])
        reordered = reordered.set_column(0, "rank", reordered["rank"].cast(pa.int64()))
        assert wh.publish(D1, {**day, "item_audience": reordered}, **META, keep_days=30) == sizes(day)


def test_an_existing_table_with_other_columns_is_reported(tmp_path):
    settings = load_settings(environ={"LLMREC_HOME": str(tmp_path)})
    conn = duckdb.connect(settings.warehouse_target)
    conn.execute("CREATE TABLE item_audience (ds DATE, item_id TEXT)")
    conn.close()
    with Warehouse.open(settings) as wh:
        with pytest.raises(LlmrecError, match=r"warehouse table item_audience has columns \['ds', 'item_id'\]"):
            wh.publish(D1, day_tables(D1), **META, keep_days=30)
        assert wh.published_days() == []


def test_configured_schema_and_table_names_are_used(wh_env):
    names = {"USER_RECOMMENDATIONS": "recs_users", "ITEM_RECOMMENDATIONS": "recs_items",
             "ITEM_AUDIENCE": "audiences", "PUBLICATIONS": "pubs", "USER_RECOMMENDATIONS_FRESH": "recs_fresh", "SCHEMA_NAME": "serving"}
    settings = load_settings(environ={**wh_env, **{f"LLMREC_WAREHOUSE__{k}": v for k, v in names.items()}})
    day = day_tables(D1)
    with Warehouse.open(settings) as wh:
        wh.ensure_schema()
        wh.ensure_schema()  # idempotent
        wh.publish(D1, day, **META, keep_days=30)
        wh.ensure_schema()
        assert wh.counts(D1) == sizes(day) and wh.similar_items("i1")[0]["ds"] == D1
    found = sql_rows(settings, "SELECT table_schema, table_name FROM information_schema.tables"
                               " WHERE table_schema NOT IN ('information_schema', 'pg_catalog')")
    tables_found = {name for schema, name in found if schema == "serving"}
    assert tables_found == {"recs_users", "recs_items", "audiences", "pubs", "recs_fresh", "recs_users_latest",
                            "recs_items_latest", "audiences_latest", "recs_users_current"}
    assert not {"user_recommendations", "publications"} & {name for _, name in found}
    columns = sql_rows(settings, "SELECT table_name, column_name, data_type FROM information_schema.columns"
                                 " WHERE table_schema = 'serving' ORDER BY table_name, ordinal_position")
    recs = {c: t.upper() for table, c, t in columns if table == "recs_users"}
    assert list(recs) == tables.USER_RECOMMENDATIONS.names
    assert [recs[c] for c in ("ds", "user_id", "rank", "score")] in (
        ["DATE", "VARCHAR", "INTEGER", "DOUBLE"], ["DATE", "TEXT", "INTEGER", "DOUBLE PRECISION"])
    assert [c for table, c, _ in columns if table == "pubs"] == tables.PUBLICATIONS.names
    if settings.warehouse_url:
        index = sql_rows(settings, "SELECT indexdef FROM pg_indexes"
                                   " WHERE schemaname = 'serving' AND tablename = 'recs_users'")
        assert any("(ds, user_id, rank)" in row[0] for row in index)


def test_bad_identifiers_are_refused_by_settings_and_quoted_otherwise(tmp_path):
    for key, value in (("SCHEMA_NAME", 'x"; DROP TABLE y; --'), ("ITEM_AUDIENCE", "Audience")):
        with pytest.raises(SettingsError, match=key.lower()):
            load_settings(environ={"LLMREC_HOME": str(tmp_path), f"LLMREC_WAREHOUSE__{key}": value})
    assert quote_ident('a"b') == '"a""b"'
    assert quote_ident("user_recommendations") == '"user_recommendations"'


def test_postgres_publish_loads_with_copy(postgres_db_url, postgres_server, tmp_path):
    settings = load_settings(environ={"LLMREC_HOME": str(tmp_path), "LLMREC_WAREHOUSE_URL": postgres_db_url})
    day = day_tables(D1, users=20_000, items=50, k=10)
    start = time.perf_counter()
    with Warehouse.open(settings) as wh:
        assert wh.publish(D1, day, **META, keep_days=30)["user_recommendations"] == 200_000
    elapsed = time.perf_counter() - start
    db = postgres_db_url.rsplit("/", 1)[1]
    statements = [line for line in postgres_server.log.read_text().splitlines() if line.startswith(f"db={db}:")]
    copies = [line for line in statements if "COPY" in line and "FROM STDIN" in line]
    copied = {name for name in tables.SCHEMAS if any(f'"llmrec_stage_{name}"' in line for line in copies)}
    assert copied == set(tables.SCHEMAS)
    assert not [line for line in statements if "INSERT INTO" in line and "llmrec_stage_" in line.split("SELECT")[0]]
    assert len(statements) < 300, len(statements)  # row by row would be 200,000
    assert elapsed < 30, elapsed


def test_open_refuses_other_schemes_and_reports_an_unreachable_postgres(tmp_path):
    home = {"LLMREC_HOME": str(tmp_path)}
    with pytest.raises(LlmrecError, match="scheme 'mysql'") as err:
        Warehouse.open(load_settings(environ={**home, "LLMREC_WAREHOUSE_URL": "mysql://me:s3cret@db/recs"}))
    assert "s3cret" not in str(err.value)
    port = 1  # nothing listens there: connection refused at once
    url = f"postgresql://me:s3cret@127.0.0.1:{port}/recs"
    with pytest.raises(LlmrecError, match=f"cannot connect to the Postgres warehouse me@127.0.0.1:{port}/recs") as err:
        Warehouse.open(load_settings(environ={**home, "LLMREC_WAREHOUSE_URL": url}))
    assert "s3cret" not in str(err.value)


def test_duckdb_file_is_created_under_a_missing_home(tmp_path):
    settings = load_settings(environ={"LLMREC_HOME": str(tmp_path / "new" / "home")})
    with Warehouse.open(settings) as wh:
        wh.publish(D1, day_tables(D1), **META, keep_days=30)
    assert Path(settings.warehouse_target) == tmp_path / "new" / "home" / "warehouse.duckdb"
    assert sql_rows(settings, "SELECT max(ds) FROM publications") == [(D1,)]


def test_parquet_copies_replace_the_day_and_drop_old_days(tmp_path):
    lake = tmp_path / "lake"

    def part(name, day):
        return lake / "serving" / name / f"ds={day.isoformat()}"

    write_parquet_copies(lake, D1, day_tables(D1), keep_days=2)
    write_parquet_copies(lake, D2, day_tables(D2, users=4), keep_days=2)
    smaller = day_tables(D2, users=2, tag="rerun")
    write_parquet_copies(lake, D2, smaller, keep_days=2)
    for name, table in smaller.items():
        assert [p.name for p in part(name, D2).iterdir()] == ["part-0.parquet"]
        assert pq.read_table(part(name, D2) / "part-0.parquet").equals(table.drop_columns(["ds"]))
    write_parquet_copies(lake, D4, day_tables(D4), keep_days=2)
    assert not part("item_audience", D1).exists() and part("item_audience", D2).exists()
    write_parquet_copies(lake, D2, day_tables(D2), keep_days=2)  # a backfill keeps the newer day
    days = sorted(p.name for p in (lake / "serving" / "user_recommendations").iterdir())
    assert days == ["ds=2024-03-02", "ds=2024-03-04"]
    assert not list((lake / "serving" / "_staging").iterdir())


WRITER = """
import datetime as dt, json, sys, time
from pathlib import Path
import pyarrow.parquet as pq
from llmrec_core.io.warehouse import Warehouse
from llmrec_core.settings import load_settings

source, marker = Path(sys.argv[1]), Path(sys.argv[2])
tables = {p.stem: pq.read_table(p) for p in source.glob("*.parquet")}

def pause(counts):
    marker.with_suffix(".tmp").write_text(json.dumps(counts))
    marker.with_suffix(".tmp").rename(marker)
    time.sleep(3600)

with Warehouse.open(load_settings()) as wh:
    wh.publish(dt.date.fromisoformat(sys.argv[3]), tables, run_id="killed", model_name="llmrec",
               model_version="killed", model="llmrec", keep_days=30, on_staged=pause)
"""


def test_a_writer_killed_mid_publish_leaves_the_previous_day(wh_settings, wh_env, tmp_path):
    first, second = day_tables(D1), day_tables(D2, users=50, items=20, k=10, tag="killed")
    with Warehouse.open(wh_settings) as wh:
        wh.publish(D1, first, **META, keep_days=30)
        u0 = wh.user_recommendations("u0")
    source, marker = tmp_path / "day2", tmp_path / "staged.json"
    source.mkdir()
    for name, table in second.items():
        pq.write_table(table, source / f"{name}.parquet")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMREC_")} | wh_env
    with open(tmp_path / "writer.log", "wb") as out:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source), str(marker), D2.isoformat()],
                                  cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert writer.poll() is None, (tmp_path / "writer.log").read_text()
            assert time.monotonic() < deadline, "the writer never reached on_staged"
            time.sleep(0.05)
        assert json.loads(marker.read_text()) == sizes(second)
        if wh_settings.warehouse_url:
            # The writer sits inside its open transaction; readers still see day 1, complete.
            active = sql_rows(wh_settings, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'llmrec'"
                                           " AND state = 'idle in transaction' AND datname = current_database()")
            assert active == [(1,)]
            view = sql_rows(wh_settings, "SELECT ds, count(*) FROM user_recommendations_latest GROUP BY ds")
            assert view == [(D1, 9)]
            with Warehouse.open(wh_settings) as reader:
                assert reader.latest_ds() == D1 and reader.user_recommendations("u0") == u0
        else:
            # DuckDB: one writing process holds the file; a second one is told so, clearly.
            with pytest.raises(LlmrecError, match="cannot open the DuckDB warehouse"):
                Warehouse.open(wh_settings)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    with Warehouse.open(wh_settings) as wh:
        assert wh.latest_ds() == D1 and wh.published_days() == [D1]
        assert wh.counts(D1) == sizes(first) and wh.counts(D2) == {}
        assert wh.user_recommendations("u0") == u0
        for name in tables.SCHEMAS:
            view = sql_rows(wh_settings, f"SELECT ds, count(*) FROM {name}_latest GROUP BY ds")
            assert view == [(D1, first[name].num_rows)]
            assert sql_rows(wh_settings, f"SELECT count(*) FROM {name} WHERE ds = %s", (D2,)) == [(0,)]
        assert wh.publish(D2, second, **META, keep_days=30) == sizes(second)
        assert wh.latest_ds() == D2 and wh.user_recommendations("u0")[0]["model_version"] == "killed"


def fresh_rows(ds: dt.date, users: list[str], *, tag: str = "f", at: str = "12:00") -> pa.Table:
    """Intraday rows of ``users``: the nightly columns plus refreshed_at and fresh_events."""
    when = dt.datetime.fromisoformat(f"{ds}T{at}:00+00:00")
    rows = [{**r, "refreshed_at": when, "fresh_events": 2} for r in
            day_tables(ds, users=4, tag=tag)["user_recommendations"].to_pylist() if r["user_id"] in users]
    return pa.Table.from_pylist(rows, tables.USER_RECOMMENDATIONS_FRESH)


def test_current_view_prefers_fresh_rows_until_the_nightly_catches_up(wh_settings):
    """The _current view: per user the newest fresh rows that are newer than the newest nightly
    day, else the nightly rows; a later refresh of the day replaces the earlier one."""
    current = wh_settings.warehouse.user_recommendations + "_current"

    def view() -> dict[str, tuple]:
        rows = sql_rows(wh_settings, f"SELECT user_id, ds, reason, fresh_events, refreshed_at FROM {current} ORDER BY user_id, rank")
        return {u: (d, reason.split(":")[0], n, at is not None) for u, d, reason, n, at in rows}

    with Warehouse.open(wh_settings) as wh:
        wh.publish(D1, day_tables(D1, users=4), **META, keep_days=30)
        assert wh.publish_fresh(D2, fresh_rows(D2, ["u0", "u1"], tag="f1"), keep_days=30) == 6
        assert view() == {"u0": (D2, "f1", 2, True), "u1": (D2, "f1", 2, True), "u2": (D1, "a", 0, False), "u3": (D1, "a", 0, False)}
        # A later refresh of D2 supersedes the earlier one, for every user.
        wh.publish_fresh(D2, fresh_rows(D2, ["u1", "u2"], tag="f2", at="12:15"), keep_days=30)
        assert view() == {"u0": (D1, "a", 0, False), "u1": (D2, "f2", 2, True), "u2": (D2, "f2", 2, True), "u3": (D1, "a", 0, False)}
        assert [r["reason"][:2] for r in wh.current_recommendations("u1", k=2)] == ["f2", "f2"]
        assert wh.fresh_days() == [D2]
        # D2's nightly rows arrive: D2's fresh rows stop showing; D3's show again over them.
        wh.publish(D2, day_tables(D2, users=4, tag="b"), **META, keep_days=30)
        assert {v[:2] for v in view().values()} == {(D2, "b")}
        wh.publish_fresh(D3, fresh_rows(D3, ["u3"], tag="f3"), keep_days=30)
        assert view()["u3"] == (D3, "f3", 2, True) and view()["u0"] == (D2, "b", 0, False)
        assert wh.fresh_days() == [D2, D3]


def test_fresh_rows_are_validated_like_the_nightly_ones(wh_settings):
    with Warehouse.open(wh_settings) as wh:
        wh.publish_fresh(D2, fresh_rows(D2, ["u0"]), keep_days=30)
        bad = fresh_rows(D2, ["u1"])
        bad = pa.concat_tables([bad, bad.slice(0, 1)])
        with pytest.raises(PublishError, match="duplicate_rank"):
            wh.publish_fresh(D2, bad, keep_days=30)
        with pytest.raises(PublishError, match="missing columns"):
            wh.publish_fresh(D2, bad.drop_columns(["fresh_events"]), keep_days=30)
        assert {r["user_id"] for r in wh.current_recommendations("u0")} == {"u0"}  # the earlier refresh stays
        assert wh.current_recommendations("u1") == []
