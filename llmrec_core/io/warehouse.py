"""The serving warehouse: where the nightly recommendations are published and read with SQL.

The only module that talks to DuckDB or Postgres (docs/data-contract.md). The embedded default is
the DuckDB file ``$LLMREC_HOME/warehouse.duckdb``; a ``postgresql://`` ``LLMREC_WAREHOUSE_URL``
selects Postgres. Statements are built in :mod:`llmrec_core.io.warehouse_sql`; the Arrow-side
checks and the Parquet copies in the lake are in :mod:`llmrec_core.io.publication`.

    with Warehouse.open(settings) as wh:
        wh.publish(ds, {"user_recommendations": ..., "item_recommendations": ..., "item_audience": ...},
                   run_id=run_id, model_name=name, model_version=version, model=kind, keep_days=settings.warehouse.keep_days)
        wh.user_recommendations("u42")

A publish is one transaction: stage the Arrow tables (Postgres COPY / DuckDB Arrow scan into
temporary tables), validate the staged rows in SQL, then replace the day in the main tables and
record it in the publications table. The ``*_latest`` views show the newest published day, so a
reader sees the previous complete state or the new one, and a writer killed at any point before
the commit leaves the previous state untouched.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from llmrec_core.errors import LlmrecError
from llmrec_core.io import serving_schema as serving
from llmrec_core.io.publication import (
    PublishError,
    conform,
    reconcile_parquet_copies,
    write_parquet_copies,
)
from llmrec_core.io.warehouse_sql import (
    LOGICAL,
    DuckDialect,
    Names,
    PgDialect,
    Statements,
)

__all__ = ["PublishError", "Warehouse", "reconcile_parquet_copies", "write_parquet_copies"]
log = logging.getLogger(__name__)
POSTGRES_SCHEMES = ("postgresql", "postgres")
COPY_CHUNK_ROWS = 65_536
# How the two engines name a timestamp without time zone in information_schema.
NAIVE_TIMESTAMPS = ("TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE")


class Warehouse:
    """A connection to the serving warehouse; a context manager."""

    def __init__(self, conn, dialect: DuckDialect | PgDialect, names: Names, where: str):
        self._conn = conn
        # Timestamps are read back as UTC datetimes, whatever the machine's or the server's zone.
        conn.execute(dialect.utc_session)
        self._sql = Statements(dialect, names)
        self._names = names
        self._ready = False
        self.kind = dialect.kind
        self.where = where

    @classmethod
    def open(cls, settings) -> Warehouse:
        names = Names.from_settings(settings.warehouse)
        url = settings.warehouse_url or ""
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme in POSTGRES_SCHEMES:
            conn, where = _connect_postgres(url)
            return cls(conn, PgDialect(), names, where)
        if scheme:
            raise LlmrecError(
                f"unsupported warehouse URL scheme {scheme!r} (LLMREC_WAREHOUSE_URL): use postgresql://... "
                "or leave it unset for the DuckDB file under LLMREC_HOME"
            )
        path = Path(settings.warehouse_target).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = duckdb.connect(str(path))
        except duckdb.Error as err:
            # Typically the file lock: DuckDB admits one writing process at a time.
            raise LlmrecError(f"cannot open the DuckDB warehouse {path}: {_one_line(err)}") from None
        return cls(conn, DuckDialect(), names, str(path))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _q(self, query, params=None):
        return self._conn.execute(query, params or None)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.kind == "postgres":
            with self._conn.transaction():
                yield
            return
        self._conn.begin()
        try:
            yield
        except BaseException:
            self._conn.rollback()
            raise
        self._conn.commit()

    # -- schema ------------------------------------------------------------------------------
    def _catalog(self) -> dict[str, dict[str, str]]:
        """Each table and view of the warehouse schema: its columns in order, with their SQL types."""
        found: dict[str, dict[str, str]] = {}
        for table, column, data_type in self._q(self._sql.catalog(), [self._names.schema]).fetchall():
            found.setdefault(table, {})[column] = data_type.upper()
        return found

    def _primary_keys(self) -> dict[str, tuple[str, ...]]:
        """Each table's primary key columns, for the tables that have one."""
        found: dict[str, tuple[str, ...]] = {}
        for table, column in self._q(self._sql.primary_keys(), [self._names.schema]).fetchall():
            found[table] = (*found.get(table, ()), column)
        return found

    def _comments_current(self) -> bool:
        """Whether every table, view and column carries its description of ``serving_schema``."""
        found = {(obj, col): text for obj, col, text in self._q(self._sql.comments(), [self._names.schema]).fetchall()}
        configured = self._names.described()
        return all(found.get((configured[obj], col)) == text for (obj, col), text in serving.comments().items())

    def ensure_schema(self) -> None:
        """Create what is missing and bring an older warehouse up to this code (keys, time zones,
        comments); idempotent.

        An up-to-date warehouse costs three catalogue queries. Otherwise one transaction creates
        what is missing, migrates the existing tables in place (both engines add a key or change a
        column's type with ALTER TABLE) and sets every comment. On Postgres the plan is made again
        inside it, under a lock, so that two writers upgrading at once do not both add a key."""
        if not self._upgrade():
            self._ready = True
            return
        with self._transaction():
            if self.kind == "postgres":
                self._q(*self._sql.schema_lock())
            statements = self._upgrade()
            for query, params in statements:
                self._q(query, params)
        self._ready = True
        log.info("brought the serving tables of the %s warehouse %s up to date", self.kind, self.where)

    def _upgrade(self) -> list[tuple[object, list]]:
        """The statements that bring the warehouse up to this code; none when it is."""
        found, keys = self._catalog(), self._primary_keys()
        migrations = []
        for logical, schema in serving.TABLES.items():
            name = self._names.table[logical]
            if name not in found:
                continue
            have = list(found[name])
            if have != schema.names[:len(have)] or not set(schema.names[len(have):]) <= set(serving.ADDED_COLUMNS.get(logical, ())):
                raise LlmrecError(
                    f"warehouse table {name} has columns {have}, expected {schema.names}: migrate or drop it"
                )
            migrations += self._migrations(logical, found[name], keys.get(name))
        missing = [name for name in self._names.objects() if name not in found]
        if not missing and not migrations and self._comments_current():
            return []
        comments = [(self._sql.comment(obj, column, text), []) for (obj, column), text in serving.comments().items()]
        return [*self._sql.create_all(), *migrations, *comments]

    def _migrations(self, logical: str, types: dict[str, str], key: tuple[str, ...] | None) -> list[tuple[object, list]]:
        """What a table created by an older version lacks: the columns of ``ADDED_COLUMNS`` it was made
        without, TIMESTAMP WITH TIME ZONE where it has naive timestamps (always written as UTC), and its
        primary key, which its rows must already satisfy."""
        name, columns = self._names.table[logical], serving.PRIMARY_KEYS[logical]
        steps = [(self._sql.add_column(logical, c), []) for c in serving.TABLES[logical].names[len(types):]]
        steps += [(self._sql.to_utc(logical, f.name), []) for f in serving.TABLES[logical]
                  if serving.SQL_TYPES[f.type] == "TIMESTAMP WITH TIME ZONE" and types.get(f.name) in NAIVE_TIMESTAMPS]
        if key is not None:
            return steps
        shared = int(self._q(self._sql.duplicates(logical, columns, staged=False)).fetchone()[0])
        if shared:
            raise LlmrecError(
                f"cannot add the primary key ({', '.join(columns)}) to the warehouse table {name}: {shared} of its rows "
                "share those values with another row; remove the duplicates, then publish again"
            )
        return [*steps, (self._sql.add_primary_key(logical), []), *self._sql.drop_key_index(logical)]

    def _has_tables(self) -> bool:
        if not self._ready:
            self._ready = all(name in self._catalog() for name in self._names.objects())
        return self._ready

    # -- publish -------------------------------------------------------------------------------
    def publish(
        self, ds: dt.date, tables: dict[str, pa.Table], *, run_id: str, model_name: str, model_version: str, model: str,
        keep_days: int, on_staged: Callable[[dict[str, int]], None] | None = None,
    ) -> dict[str, int]:
        """Make ``tables`` the content of day ``ds`` in one transaction; returns rows per table.
        ``model`` is which model the version is (its ``model`` tag: llmrec or a served baseline)."""
        if keep_days < 1:
            raise ValueError("keep_days must be at least 1")
        arrow = conform(ds, tables)
        self.ensure_schema()
        start = time.perf_counter()
        s = self._sql
        with self._transaction():
            for name, table in arrow.items():
                self._q(s.create_stage(name))
                self._stage(name, table)
            counts = self._validate(ds, arrow)
            if on_staged is not None:
                on_staged(dict(counts))
            if self.kind == "postgres":
                self._q(s.lock())
            for name in LOGICAL:
                self._q(s.delete_day(name), [ds])
                self._q(s.insert_staged(name))
            now = dt.datetime.now(dt.UTC)
            self._q(s.upsert_publication(), [ds, now, run_id, model_name, model_version, *(counts[n] for n in LOGICAL), model])
            # Retention counts from the newest day, so backfilling an old day keeps the newer ones,
            # and it never takes the day before the newest: a jump in days keeps the last good one.
            newest = [row[0] for row in self._q(s.newest_days(), [2]).fetchall()]
            cutoff = min(newest[0] - dt.timedelta(days=keep_days), newest[-1])
            for name in (*LOGICAL, "publications"):
                self._q(s.delete_before(name), [cutoff])
            if self.kind == "duckdb":
                for name in LOGICAL:
                    self._q(s.drop_stage(name))
        if ds < cutoff:
            log.warning("%s is more than %d days older than the newest published day: dropped again", ds, keep_days)
        log.info("published %s to the %s warehouse in %.1fs: %s", ds, self.kind, time.perf_counter() - start, counts)
        return counts

    def publish_fresh(self, ds: dt.date, table: pa.Table, *, keep_days: int) -> int:
        """Make ``table`` the intraday rows of day ``ds`` (replacing an earlier refresh of that day)
        in one transaction, validated like a nightly publish; returns the rows published."""
        if keep_days < 1:
            raise ValueError("keep_days must be at least 1")
        fresh = serving.FRESH
        arrow = conform(ds, {fresh: table}, (fresh,))
        self.ensure_schema()
        s = self._sql
        with self._transaction():
            self._q(s.create_stage(fresh))
            self._stage(fresh, arrow[fresh])
            counts = self._validate(ds, arrow)
            if self.kind == "postgres":
                self._q(s.lock())
            self._q(s.delete_day(fresh), [ds])
            self._q(s.insert_staged(fresh))
            cutoff = self._q(s.latest_fresh_ds()).fetchone()[0] - dt.timedelta(days=keep_days)
            self._q(s.delete_before(fresh), [cutoff])
            if self.kind == "duckdb":
                self._q(s.drop_stage(fresh))
        log.info("published the intraday rows of %s to the %s warehouse: %s", ds, self.kind, counts)
        return counts[fresh]

    def _stage(self, name: str, table: pa.Table) -> None:
        if self.kind == "postgres":
            options = pacsv.WriteOptions(include_header=False)
            with self._conn.cursor() as cur, cur.copy(self._sql.copy_in(name)) as copy:
                for batch in table.to_batches(max_chunksize=COPY_CHUNK_ROWS):
                    buf = io.BytesIO()
                    pacsv.write_csv(batch, buf, options)
                    copy.write(buf.getvalue())
            return
        relation = f"llmrec_arrow_{name}_{uuid.uuid4().hex[:8]}"
        self._conn.register(relation, table)
        try:
            self._q(self._sql.insert_from(name, relation))
        finally:
            self._conn.unregister(relation)

    def _validate(self, ds: dt.date, arrow: dict[str, pa.Table]) -> dict[str, int]:
        failures, counts = [], {}
        for name, table in arrow.items():
            staged, wrong_ds, with_null, *per_column = self._q(self._sql.stats(name), [ds]).fetchone()
            counts[name] = staged
            if staged != table.num_rows:
                diff = abs(staged - table.num_rows)
                detail = f"{diff} rows lost or added: {staged} staged, {table.num_rows} given"
                failures.append(("row_count", name, diff, detail))
            key, other = serving.KEYS[name]
            for check, columns in (("duplicate_rank", (key, "rank")), ("duplicate_pair", (key, other))):
                rows = int(self._q(self._sql.duplicates(name, columns)).fetchone()[0])
                if rows:
                    failures.append((check, name, rows, f"{rows} rows share ({', '.join(columns)}) with another row"))
            if with_null:
                cols = ", ".join(f"{c}: {n}" for c, n in zip(table.column_names, per_column, strict=True) if n)
                failures.append(("null", name, with_null, f"{with_null} rows with a NULL ({cols})"))
            if wrong_ds:
                failures.append(("ds", name, wrong_ds, f"{wrong_ds} rows with a ds other than {ds}"))
        if failures:
            raise PublishError(ds, failures)
        return counts

    # -- reads ---------------------------------------------------------------------------------
    def latest_ds(self) -> dt.date | None:
        return self._q(self._sql.latest_ds()).fetchone()[0] if self._has_tables() else None

    def published_days(self) -> list[dt.date]:
        return [row[0] for row in self._q(self._sql.published_days()).fetchall()] if self._has_tables() else []

    def publication_runs(self) -> dict[dt.date, str]:
        """Each published day and the run that published it."""
        return {row[0]: row[1] for row in self._q(self._sql.publication_runs()).fetchall()} if self._has_tables() else {}

    def read_day(self, ds: dt.date) -> dict[str, pa.Table]:
        """The published rows of day ``ds``, one Arrow table per logical table."""
        out = {}
        for name in LOGICAL:
            schema = serving.ALL_SCHEMAS[name]
            rows = self._q(self._sql.day_rows(name), [ds]).fetchall()
            columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
            out[name] = pa.Table.from_arrays([pa.array(list(col), type=f.type) for col, f in zip(columns, schema, strict=True)], schema=schema)
        return out

    def counts(self, ds: dt.date) -> dict[str, int]:
        """Rows per logical table of a published day; ``{}`` when the day is not published."""
        if not self._has_tables():
            return {}
        row = self._q(self._sql.counts(), [ds] * (len(LOGICAL) + 1)).fetchone()
        return {} if row is None else dict(zip(LOGICAL, map(int, row), strict=True))

    def fresh_days(self) -> list[dt.date]:
        """Days with intraday rows."""
        if not self._has_tables():
            return []
        return [r[0] for r in self._q(self._sql.fresh_days()).fetchall()]

    def current_recommendations(self, user_id: str, k: int = 10) -> list[dict]:
        """What ``user_id`` should see now: the ``_current`` view's rows by rank."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if not self._has_tables():
            return []
        cur = self._q(self._sql.current(), [user_id, k])
        columns = [c[0] for c in cur.description]
        return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]

    def user_recommendations(self, user_id: str, ds: dt.date | None = None, k: int = 10) -> list[dict]:
        return self._top("user_recommendations", user_id, ds, k)

    def similar_items(self, item_id: str, ds: dt.date | None = None, k: int = 10) -> list[dict]:
        return self._top("item_recommendations", item_id, ds, k)

    def audience(self, item_id: str, ds: dt.date | None = None, k: int = 10) -> list[dict]:
        return self._top("item_audience", item_id, ds, k)

    def _top(self, logical: str, key: str, ds: dt.date | None, k: int) -> list[dict]:
        """Rows of ``key`` by rank, of day ``ds`` or (None) of the newest published day."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if not self._has_tables():
            return []
        params = [key, k] if ds is None else [key, ds, k]
        cur = self._q(self._sql.top(logical, by_ds=ds is not None), params)
        columns = [c[0] for c in cur.description]
        return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _connect_postgres(url: str):
    """An autocommit connection (reads never hold a transaction open) and a password-free label."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        raise LlmrecError("LLMREC_WAREHOUSE_URL is not a valid postgresql:// URL") from None
    where = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', info.get('user', ''))}"
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="llmrec")
    except psycopg.Error as err:
        reason = _one_line(err)
        if info.get("password"):
            reason = reason.replace(str(info["password"]), "***")
        user = info.get("user", "")
        raise LlmrecError(f"cannot connect to the Postgres warehouse {user}@{where}: {reason}") from None
    return conn, f"postgresql://{where}"
