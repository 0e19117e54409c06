"""Tables that describe themselves: keys, comments and time zones of the serving tables, on a real
DuckDB file and a real PostgreSQL server, and docs/serving-tables.md against their one source.

Run: ``python -m pytest tests/io/test_table_comments.py -q``. Every query on the database here is
the test's own (``duckdb_constraints()``, ``pg_constraint``, ``pg_description`` ...), not the code's.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from llmrec_core.errors import LlmrecError
from llmrec_core.io import serving_schema as tables
from llmrec_core.io.warehouse import Warehouse
from tests.io.test_warehouse import D1, D2, META, REPO, day_tables, fresh_rows, sql_rows

DOC = REPO / "docs" / "serving-tables.md"
# The reader's own zone, not UTC, so that a timestamp read back can only be right as an instant.
READER_ZONE = "Asia/Kolkata"


@contextmanager
def connection(settings, zone: str | None = None):
    """A connection straight to the warehouse, outside the code under test (in ``zone`` when given),
    each statement committed on its own; with its placeholder."""
    if settings.warehouse_url:
        import psycopg

        conn, placeholder, set_zone = psycopg.connect(settings.warehouse_url, autocommit=True), "%s", "SET TIME ZONE '{}'"
    else:
        conn, placeholder, set_zone = duckdb.connect(settings.warehouse_target), "?", "SET SESSION TimeZone = '{}'"
    try:
        if zone:
            conn.execute(set_zone.format(zone))
        yield conn, placeholder
    finally:
        conn.close()


def execute(settings, *statements: str | tuple[str, list[tuple]]) -> None:
    """Run statements on the warehouse; a (statement, rows) pair runs once per row."""
    with connection(settings) as (conn, placeholder):
        for statement in statements:
            if isinstance(statement, str):
                conn.execute(statement)
            else:
                conn.cursor().executemany(statement[0].replace("%s", placeholder), statement[1])


def read(settings, query: str) -> list[tuple]:
    """``sql_rows`` in the reader's zone."""
    with connection(settings, READER_ZONE) as (conn, _):
        return conn.execute(query).fetchall()


def keys_in_db(settings) -> dict[str, set[str]]:
    """Each table's primary key and unique constraints, as ``PRIMARY KEY (a, b)``."""
    if settings.warehouse_url:
        rows = sql_rows(settings, "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
                                  " WHERE contype IN ('p', 'u') AND connamespace = 'public'::regnamespace")
    else:
        rows = sql_rows(settings, "SELECT table_name, constraint_type || ' (' || array_to_string(constraint_column_names, ', ') || ')'"
                                  " FROM duckdb_constraints() WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE')")
    out: dict[str, set[str]] = {}
    for table, key in rows:
        out.setdefault(table, set()).add(key)
    return out


WANTED_KEYS = {name: {f"PRIMARY KEY ({', '.join(key)})"} for name, key in tables.PRIMARY_KEYS.items()}


def comments_in_db(settings) -> dict[tuple[str, str | None], str | None]:
    """The comment of every table and view (column None) and of every column, by name."""
    if settings.warehouse_url:
        return dict(((t, c), text) for t, c, text in sql_rows(settings, (
            "SELECT c.relname, NULL, obj_description(c.oid, 'pg_class') FROM pg_class c"
            " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v')"
            " UNION ALL SELECT c.relname, a.attname, d.description FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
            " LEFT JOIN pg_description d ON d.objoid = c.oid AND d.objsubid = a.attnum"
            " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v') AND a.attnum > 0")))
    rows = sql_rows(settings, "SELECT table_name, NULL, comment FROM duckdb_tables() UNION ALL"
                              " SELECT view_name, NULL, comment FROM duckdb_views() WHERE NOT internal UNION ALL"
                              " SELECT table_name, column_name, comment FROM duckdb_columns()")
    return {(t, c): text for t, c, text in rows}


def test_the_doc_is_rendered_from_the_descriptions():
    for name, described in tables.DESCRIPTIONS.items():
        assert list(described.columns) == tables.columns_of(name).names, name
        assert described.about.strip() and all(text.strip() for text in described.columns.values()), name
    assert set(tables.DESCRIPTIONS) == set(tables.TABLES) | set(tables.VIEWS)
    assert DOC.read_text(encoding="utf-8") == tables.markdown(), (
        "docs/serving-tables.md differs from llmrec_core/io/serving_schema.py: "
        "python -m llmrec_core.io.serving_schema > docs/serving-tables.md")
    assert "docs/serving-tables.md" in (REPO / "README.md").read_text(encoding="utf-8")


def test_published_tables_have_keys_comments_and_utc_timestamps(wh_settings):
    before = dt.datetime.now(dt.UTC)
    with Warehouse.open(wh_settings) as wh:
        wh.publish(D1, day_tables(D1), **META, keep_days=30)
        wh.publish_fresh(D2, fresh_rows(D2, ["u0"], at="12:15"), keep_days=30)
        fresh = wh.current_recommendations("u0")
    after = dt.datetime.now(dt.UTC)

    assert {t: k for t, k in keys_in_db(wh_settings).items() if t in tables.TABLES} == WANTED_KEYS
    found = comments_in_db(wh_settings)
    wanted = tables.comments()
    assert {k: found.get(k) for k in wanted} == wanted
    described = {(name, column) for name in tables.DESCRIPTIONS for column in (None, *tables.columns_of(name).names)}
    assert {k for k in found if k[0] in tables.DESCRIPTIONS} == described  # nothing left without a comment

    types = sql_rows(wh_settings, "SELECT table_name, column_name, upper(data_type) FROM information_schema.columns"
                                  " WHERE column_name IN ('published_at', 'refreshed_at') ORDER BY table_name")
    assert types == [("publications", "published_at", "TIMESTAMP WITH TIME ZONE"),
                     ("user_recommendations_current", "refreshed_at", "TIMESTAMP WITH TIME ZONE"),
                     ("user_recommendations_fresh", "refreshed_at", "TIMESTAMP WITH TIME ZONE")]
    [(published_at,)] = read(wh_settings, "SELECT published_at FROM publications")
    assert published_at.utcoffset() == dt.timedelta(hours=5, minutes=30)  # the reader's zone ...
    assert before <= published_at <= after  # ... and the instant the publish ran
    assert {r["refreshed_at"] for r in fresh} == {dt.datetime(2024, 3, 2, 12, 15, tzinfo=dt.UTC)}
    assert fresh[0]["refreshed_at"].utcoffset() == dt.timedelta(0)  # the code reads back in UTC


# A copy of a published row with its key intact: another item at the same rank, another run of the same day.
DUPLICATES = [
    ("user_recommendations", {"item_id": "i_other"}), ("item_recommendations", {"rec_item_id": "i_other"}),
    ("item_audience", {"user_id": "u_other"}), (tables.FRESH, {"item_id": "i_other", "refreshed_at": dt.datetime.now(dt.UTC)}),
    ("publications", {"run_id": "run-other"}),
]


def test_the_keys_reject_a_duplicate_natural_key(wh_settings):
    with Warehouse.open(wh_settings) as wh:
        wh.publish(D1, day_tables(D1), **META, keep_days=30)
        wh.publish_fresh(D2, fresh_rows(D2, ["u0", "u1"]), keep_days=30)
    errors: tuple[type[Exception], ...] = (duckdb.ConstraintException,)
    if wh_settings.warehouse_url:
        import psycopg

        errors = (psycopg.errors.UniqueViolation,)
    with connection(wh_settings) as (conn, placeholder):
        for table, change in DUPLICATES:
            columns = tables.TABLES[table].names
            row = dict(zip(columns, conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY 2, 3 LIMIT 1").fetchone(), strict=True))
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            with pytest.raises(errors):
                conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([placeholder] * len(columns))})",
                             list({**row, **change}.values()))
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == count, (table, change)


OLD_PUBLISHED_AT = dt.datetime(2024, 3, 2, 5, 0)  # naive, as the version before wrote it: UTC


def make_old_warehouse(settings, breaks_key: bool = False) -> None:
    """A warehouse as the version before keys and comments left it, with its DDL: no keys but the
    publications one, published_at a naive TIMESTAMP, on Postgres an index on (ds, <key>, rank);
    the same views. Day D1 is published and D2 refreshed."""
    def coldefs(schema: pa.Schema) -> str:
        return ", ".join(f"{f.name} {'TIMESTAMP' if f.name == 'published_at' else tables.SQL_TYPES[f.type]} NOT NULL" for f in schema)

    publications = pa.schema([f for f in tables.PUBLICATIONS if f.name != "model"])  # a column added later

    Path(settings.home).mkdir(parents=True, exist_ok=True)
    day = {**day_tables(D1), tables.FRESH: fresh_rows(D2, ["u1"])}
    if breaks_key:  # a second row at the same rank of the same user
        rows = day["user_recommendations"].to_pylist()
        day["user_recommendations"] = pa.Table.from_pylist([*rows, {**rows[0], "item_id": "i_other"}], tables.USER_RECOMMENDATIONS)
    ddl: list[str | tuple[str, list[tuple]]] = [f"CREATE TABLE publications ({coldefs(publications)}, PRIMARY KEY (ds))"]
    for name, schema in tables.ALL_SCHEMAS.items():
        ddl.append(f"CREATE TABLE {name} ({coldefs(schema)})")
        if settings.warehouse_url:
            ddl.append(f"CREATE INDEX {name}_ds_{tables.KEYS[name][0]}_idx ON {name} (ds, {tables.KEYS[name][0]}, rank)")
        if name in tables.SCHEMAS:
            ddl.append(f"CREATE VIEW {name}_latest AS SELECT * FROM {name} WHERE ds = (SELECT max(ds) FROM publications)")
        ddl.append((f"INSERT INTO {name} VALUES ({', '.join(['%s'] * len(schema))})", [tuple(r.values()) for r in day[name].to_pylist()]))
    fresh = ", ".join(tables.USER_RECOMMENDATIONS_FRESH.names)
    ddl.append((
        f"CREATE VIEW {tables.CURRENT} AS WITH nightly AS (SELECT max(ds) AS ds FROM publications),"
        f" fresh AS (SELECT {fresh}, max(ds) OVER (PARTITION BY user_id) AS newest FROM {tables.FRESH}"
        " WHERE ds > coalesce((SELECT ds FROM nightly), DATE '0001-01-01'))"
        f" SELECT {fresh} FROM fresh WHERE ds = newest UNION ALL"
        f" SELECT {', '.join('n.' + c for c in tables.USER_RECOMMENDATIONS.names)}, CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS refreshed_at,"
        " 0 AS fresh_events FROM user_recommendations AS n WHERE n.ds = (SELECT ds FROM nightly)"
        " AND NOT EXISTS (SELECT 1 FROM fresh WHERE fresh.user_id = n.user_id)"))
    counts = [day[name].num_rows for name in tables.SCHEMAS]
    ddl.append((f"INSERT INTO publications VALUES ({', '.join(['%s'] * len(publications))})",
                [(D1, OLD_PUBLISHED_AT, "run-old", "llmrec", "6", *counts)]))
    execute(settings, *ddl)


def test_an_older_warehouse_is_migrated_in_place(wh_settings, caplog):
    make_old_warehouse(wh_settings)
    assert not {t for t in keys_in_db(wh_settings) if t != "publications"}
    with Warehouse.open(wh_settings) as wh:  # readers before the upgrade
        assert wh.published_days() == [D1] and wh.user_recommendations("u0")[0]["model_version"] == "a"
        assert [r["refreshed_at"] for r in wh.current_recommendations("u1", k=1)] == [dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC)]
    with Warehouse.open(wh_settings) as wh:
        wh.publish_fresh(D2, fresh_rows(D2, ["u0"], at="12:15"), keep_days=30)
        wh.publish(D2, day_tables(D2, tag="b"), **META, keep_days=30)
        assert wh.published_days() == [D1, D2] and wh.counts(D1) == {n: t.num_rows for n, t in day_tables(D1).items()}
    assert {t: k for t, k in keys_in_db(wh_settings).items() if t in tables.TABLES} == WANTED_KEYS
    found = comments_in_db(wh_settings)
    assert all(found.get(k) == text for k, text in tables.comments().items())
    # The naive UTC time became the same instant.
    published = dict(read(wh_settings, "SELECT ds, published_at FROM publications"))
    assert published[D1] == OLD_PUBLISHED_AT.replace(tzinfo=dt.UTC) and published[D1].tzinfo is not None
    # The column added since: NULL for the day published before it, the model for the new one.
    assert read(wh_settings, "SELECT ds, model FROM publications ORDER BY ds") == [(D1, None), (D2, META["model"])]
    if wh_settings.warehouse_url:  # the primary key's index replaced the old one on the same columns
        indexes = sql_rows(wh_settings, "SELECT indexname FROM pg_indexes WHERE tablename = 'user_recommendations'")
        assert indexes == [("user_recommendations_pkey",)]

    # An older description is brought up to date; an up-to-date warehouse is left alone.
    execute(wh_settings, "COMMENT ON COLUMN user_recommendations.score IS 'an older text'")
    with Warehouse.open(wh_settings) as wh, caplog.at_level("INFO", logger="llmrec_core.io.warehouse"):
        wh.ensure_schema()
        assert comments_in_db(wh_settings)[("user_recommendations", "score")] == tables.DESCRIPTIONS["user_recommendations"].columns["score"]
        assert "up to date" in caplog.text
        caplog.clear()
        wh.ensure_schema()
    assert "up to date" not in caplog.text


def test_an_older_table_that_breaks_a_key_is_reported_and_left_alone(wh_settings):
    make_old_warehouse(wh_settings, breaks_key=True)
    with Warehouse.open(wh_settings) as wh:
        with pytest.raises(LlmrecError, match=r"cannot add the primary key \(ds, user_id, rank\) to the warehouse table "
                                              r"user_recommendations: 2 of its rows share those values"):
            wh.publish(D2, day_tables(D2), **META, keep_days=30)
        assert wh.published_days() == [D1]
    assert not {t for t in keys_in_db(wh_settings) if t != "publications"}
    assert read(wh_settings, "SELECT published_at FROM publications")[0][0] == OLD_PUBLISHED_AT  # still naive
    assert len(read(wh_settings, "SELECT * FROM publications")[0]) == len(tables.PUBLICATIONS) - 1  # nor a column added
