"""The SQL statements of the serving warehouse, built for DuckDB or Postgres.

:mod:`llmrec_core.io.warehouse` runs these statements; this module only builds them, so every
statement of both engines can be read in one place. Names from configuration are always quoted
(:func:`quote_ident` for DuckDB, ``psycopg.sql.Identifier`` for Postgres) and every value is a
bound parameter: ``%s`` in the templates below, turned into ``?`` for DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from llmrec_core.io import serving_schema as tables

LOGICAL = tuple(tables.SCHEMAS)
FRESH = tables.FRESH
# Staging tables are temporary, private to the publishing connection.
STAGE_PREFIX = "llmrec_stage_"


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


class DuckDialect:
    """Statements as plain strings with ``?`` parameters."""

    kind = "duckdb"
    utc_session = "SET SESSION TimeZone = 'UTC'"

    def ident(self, *parts: str | None) -> str:
        return ".".join(quote_ident(p) for p in parts if p is not None)

    def join(self, items, sep: str = ", ") -> str:
        return sep.join(items)

    def sql(self, template: str, **parts) -> str:
        # Placeholders are replaced before the (already quoted) identifiers go in.
        return template.replace("%s", "?").format(**parts)

    def literal(self, text: str) -> str:
        # COMMENT ON takes a literal, not a parameter.
        return "'" + text.replace("'", "''") + "'"


class PgDialect:
    """Statements as ``psycopg.sql`` compositions with ``%s`` parameters."""

    kind = "postgres"
    utc_session = "SET TIME ZONE 'UTC'"

    def __init__(self):
        from psycopg import sql

        self._sql = sql

    def ident(self, *parts: str | None):
        return self._sql.Identifier(*(p for p in parts if p is not None))

    def join(self, items, sep: str = ", "):
        return self._sql.SQL(sep).join(items)

    def sql(self, template: str, **parts):
        return self._sql.SQL(template).format(**parts)

    def literal(self, text: str):
        return self._sql.Literal(text)


@dataclass(frozen=True)
class Names:
    """Configured names: the schema and, per logical table (and ``publications``), its table."""

    schema: str | None
    table: dict[str, str]

    @classmethod
    def from_settings(cls, wh) -> Names:
        return cls(wh.schema_name, {name: wh.table(name) for name in (*LOGICAL, FRESH, "publications")})

    def view(self, logical: str) -> str:
        return f"{self.table[logical]}_latest"

    @property
    def current(self) -> str:
        """The view of what each user should see now: fresh rows where they are newer than the nightly ones."""
        return f"{self.table['user_recommendations']}_current"

    def described(self) -> dict[str, str]:
        """The configured name of every table and view, by its logical name (``serving_schema.DESCRIPTIONS``)."""
        return {**self.table, **{f"{name}_latest": self.view(name) for name in LOGICAL}, tables.CURRENT: self.current}

    def objects(self) -> list[str]:
        """Every table and view that a complete warehouse has."""
        return list(self.described().values())


class Statements:
    """Every statement the warehouse runs; each method returns a query for ``execute``."""

    def __init__(self, dialect: DuckDialect | PgDialect, names: Names):
        self.d, self.names = dialect, names

    def table(self, name: str):
        return self.d.ident(self.names.schema, self.names.table[name])

    def stage(self, logical: str):
        return self.d.ident(STAGE_PREFIX + logical)

    def cols(self, names) -> object:
        return self.d.join([self.d.ident(c) for c in names])

    def _coldefs(self, schema: pa.Schema, not_null: bool, added: tuple[str, ...] = ()):
        def suffix(name: str) -> str:
            return " NOT NULL" if not_null and name not in added else ""

        return self.d.join([self.d.sql("{c} " + tables.SQL_TYPES[f.type] + suffix(f.name), c=self.d.ident(f.name)) for f in schema])

    # -- schema ------------------------------------------------------------------------------
    def catalog(self):
        """(table_name, column_name, data_type) of the warehouse schema, in column order; 1 parameter: schema."""
        return self.d.sql(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_catalog = current_database()"
            " AND table_schema = coalesce(%s, current_schema()) ORDER BY table_name, ordinal_position"
        )

    def primary_keys(self):
        """(table_name, column_name) of every primary key of the warehouse schema, each key's columns
        in order; 1 parameter: schema."""
        return self.d.sql(
            "SELECT tc.table_name, k.column_name"
            " FROM information_schema.table_constraints AS tc JOIN information_schema.key_column_usage AS k"
            " ON k.constraint_schema = tc.constraint_schema AND k.constraint_name = tc.constraint_name AND k.table_name = tc.table_name"
            " WHERE tc.table_catalog = current_database() AND tc.table_schema = coalesce(%s, current_schema())"
            " AND tc.constraint_type = 'PRIMARY KEY' ORDER BY tc.table_name, k.ordinal_position"
        )

    def comments(self):
        """(object, column or NULL, comment or NULL) of every table and view of the warehouse schema and
        of their columns; 1 parameter: schema. Each engine keeps comments in its own catalogue."""
        if self.d.kind == "postgres":
            return self.d.sql(
                "WITH rel AS (SELECT c.oid, c.relname::text AS name FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                " WHERE n.nspname = coalesce(%s, current_schema()) AND c.relkind IN ('r', 'v', 'p'))"
                " SELECT name, NULL::text, obj_description(oid, 'pg_class') FROM rel"
                " UNION ALL SELECT rel.name, a.attname::text, col_description(rel.oid, a.attnum)"
                " FROM rel JOIN pg_attribute AS a ON a.attrelid = rel.oid WHERE a.attnum > 0 AND NOT a.attisdropped"
            )
        where = "WHERE database_name = current_database() AND schema_name = (SELECT name FROM s)"
        return self.d.sql(
            "WITH s AS (SELECT coalesce(%s, current_schema()) AS name)"
            f" SELECT table_name, NULL, comment FROM duckdb_tables() {where}"
            f" UNION ALL SELECT view_name, NULL, comment FROM duckdb_views() {where}"
            f" UNION ALL SELECT table_name, column_name, comment FROM duckdb_columns() {where}"
        )

    def schema_lock(self):
        """Serialises schema changes (Postgres): two first publishes at once would race on CREATE ... IF NOT EXISTS."""
        return self.d.sql("SELECT pg_advisory_xact_lock(hashtext(%s))"), [f"llmrec:{self.names.schema}"]

    def create_all(self) -> list[tuple[object, list]]:
        """The idempotent DDL of the whole warehouse, as (statement, parameters)."""
        d, names, out = self.d, self.names, []
        if names.schema is not None:
            out.append((d.sql("CREATE SCHEMA IF NOT EXISTS {s}", s=d.ident(names.schema)), []))
        for name, schema in tables.TABLES.items():
            coldefs, key = self._coldefs(schema, True, tables.ADDED_COLUMNS.get(name, ())), self.cols(tables.PRIMARY_KEYS[name])
            out.append((d.sql("CREATE TABLE IF NOT EXISTS {t} ({c}, PRIMARY KEY ({k}))", t=self.table(name), c=coldefs, k=key), []))
        for name in LOGICAL:
            view = d.ident(names.schema, names.view(name))
            out.append((d.sql(
                "CREATE OR REPLACE VIEW {v} AS SELECT {c} FROM {t} WHERE ds = (SELECT max(ds) FROM {p})",
                v=view, c=self.cols(tables.SCHEMAS[name].names), t=self.table(name), p=self.table("publications"),
            ), []))
        out.append((self._current_view(), []))
        return out

    def add_primary_key(self, name: str):
        """Add its primary key to a table created before it had one."""
        return self.d.sql("ALTER TABLE {t} ADD PRIMARY KEY ({c})", t=self.table(name), c=self.cols(tables.PRIMARY_KEYS[name]))

    def drop_key_index(self, name: str) -> list[tuple[object, list]]:
        """A Postgres table from before its primary key had an index on (ds, <key>, rank); the primary
        key's own index covers the same columns, so that one goes."""
        if self.d.kind != "postgres" or name not in tables.KEYS:
            return []
        index = self.d.ident(self.names.schema, f"{self.names.table[name]}_ds_{tables.KEYS[name][0]}_idx"[:63])
        return [(self.d.sql("DROP INDEX IF EXISTS {i}", i=index), [])]

    def add_column(self, name: str, column: str):
        """Add a column of ``ADDED_COLUMNS`` to a table created before it, NULL in the existing rows."""
        field = tables.TABLES[name].field(column)
        return self.d.sql("ALTER TABLE {t} ADD COLUMN {c} " + tables.SQL_TYPES[field.type], t=self.table(name), c=self.d.ident(column))

    def to_utc(self, name: str, column: str):
        """Turn a column of naive timestamps, written as UTC, into TIMESTAMP WITH TIME ZONE."""
        c = self.d.ident(column)
        return self.d.sql("ALTER TABLE {t} ALTER COLUMN {c} TYPE TIMESTAMP WITH TIME ZONE USING {c} AT TIME ZONE 'UTC'",
                          t=self.table(name), c=c)

    def comment(self, logical: str, column: str | None, text: str):
        """``COMMENT ON`` a table or view (``column`` None) or one of its columns, by logical name."""
        d = self.d
        target = d.ident(self.names.schema, self.names.described()[logical])
        if column is not None:
            return d.sql("COMMENT ON COLUMN {o}.{c} IS {l}", o=target, c=d.ident(column), l=d.literal(text))
        kind = "VIEW" if logical in tables.VIEWS else "TABLE"
        return d.sql("COMMENT ON " + kind + " {o} IS {l}", o=target, l=d.literal(text))

    def _current_view(self):
        """Per user, the newest day's fresh rows that are newer than the newest nightly day, else
        the nightly rows of that day: fresh rows of day D drop out once D's nightly rows exist."""
        d, names = self.d, self.names
        nightly = tables.SCHEMAS["user_recommendations"].names
        return d.sql(
            "CREATE OR REPLACE VIEW {v} AS"
            " WITH nightly AS (SELECT max(ds) AS ds FROM {p}),"
            " fresh AS (SELECT {fc}, max(ds) OVER (PARTITION BY user_id) AS newest FROM {f}"
            " WHERE ds > coalesce((SELECT ds FROM nightly), DATE '0001-01-01'))"
            " SELECT {fc} FROM fresh WHERE ds = newest"
            " UNION ALL"
            " SELECT {nc}, CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS refreshed_at, 0 AS fresh_events FROM {u} AS n"
            " WHERE n.ds = (SELECT ds FROM nightly) AND NOT EXISTS (SELECT 1 FROM fresh WHERE fresh.user_id = n.user_id)",
            v=d.ident(names.schema, names.current), p=self.table("publications"), f=self.table(FRESH), u=self.table("user_recommendations"),
            fc=self.cols(tables.ALL_SCHEMAS[FRESH].names), nc=self.d.join([d.sql("n.{c}", c=d.ident(c)) for c in nightly]),
        )

    # -- staging and checks --------------------------------------------------------------------
    def create_stage(self, logical: str):
        tail = " ON COMMIT DROP" if self.d.kind == "postgres" else ""
        coldefs = self._coldefs(tables.ALL_SCHEMAS[logical], False)
        return self.d.sql("CREATE TEMP TABLE {t} ({c})" + tail, t=self.stage(logical), c=coldefs)

    def drop_stage(self, logical: str):
        return self.d.sql("DROP TABLE IF EXISTS {t}", t=self.stage(logical))

    def copy_in(self, logical: str):
        cols = self.cols(tables.ALL_SCHEMAS[logical].names)
        return self.d.sql("COPY {t} ({c}) FROM STDIN (FORMAT csv)", t=self.stage(logical), c=cols)

    def insert_from(self, logical: str, relation: str):
        cols = self.cols(tables.ALL_SCHEMAS[logical].names)
        source = self.d.ident(relation)
        return self.d.sql("INSERT INTO {t} ({c}) SELECT {c} FROM {r}", t=self.stage(logical), c=cols, r=source)

    def stats(self, logical: str):
        """One row: staged rows, rows whose ds is not the parameter, rows with a NULL, then NULLs per column."""
        d, names = self.d, tables.ALL_SCHEMAS[logical].names
        any_null = d.join([d.sql("{c} IS NULL", c=d.ident(c)) for c in names], " OR ")
        per_column = d.join([d.sql("count(*) FILTER (WHERE {c} IS NULL)", c=d.ident(c)) for c in names])
        return d.sql(
            "SELECT count(*), count(*) FILTER (WHERE ds <> %s), count(*) FILTER (WHERE {n}), {p} FROM {t}",
            n=any_null, p=per_column, t=self.stage(logical),
        )

    def duplicates(self, logical: str, columns: tuple[str, ...], staged: bool = True):
        """One row: how many rows (staged, or of the table) share their ``columns`` values with another row."""
        return self.d.sql(
            "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {t} GROUP BY {c} HAVING count(*) > 1) AS dup",
            t=self.stage(logical) if staged else self.table(logical), c=self.cols(columns),
        )

    # -- swap ----------------------------------------------------------------------------------
    def lock(self):
        """Serialises publishers (Postgres); readers of the tables and views are not blocked."""
        return self.d.sql("LOCK TABLE {t} IN EXCLUSIVE MODE", t=self.table("publications"))

    def delete_day(self, name: str):
        return self.d.sql("DELETE FROM {t} WHERE ds = %s", t=self.table(name))

    def delete_before(self, name: str):
        return self.d.sql("DELETE FROM {t} WHERE ds < %s", t=self.table(name))

    def insert_staged(self, logical: str):
        cols = self.cols(tables.ALL_SCHEMAS[logical].names)
        stage = self.stage(logical)
        return self.d.sql("INSERT INTO {t} ({c}) SELECT {c} FROM {s}", t=self.table(logical), c=cols, s=stage)

    def upsert_publication(self):
        names = tables.PUBLICATIONS.names
        sets = self.d.join([self.d.sql("{c} = excluded.{c}", c=self.d.ident(c)) for c in names[1:]])
        values = ", ".join(["%s"] * len(names))
        return self.d.sql(
            "INSERT INTO {t} ({c}) VALUES (" + values + ") ON CONFLICT (ds) DO UPDATE SET {s}",
            t=self.table("publications"), c=self.cols(names), s=sets,
        )

    # -- reads ---------------------------------------------------------------------------------
    def published_days(self):
        return self.d.sql("SELECT ds FROM {t} ORDER BY ds", t=self.table("publications"))

    def latest_ds(self):
        return self.d.sql("SELECT max(ds) FROM {t}", t=self.table("publications"))

    def publication_runs(self):
        """Each published day with the scoring run that published it."""
        return self.d.sql("SELECT ds, run_id FROM {t} ORDER BY ds", t=self.table("publications"))

    def day_rows(self, logical: str):
        """Every row of one logical table on day %s."""
        return self.d.sql("SELECT {c} FROM {t} WHERE ds = %s", c=self.cols(tables.ALL_SCHEMAS[logical].names), t=self.table(logical))

    def newest_days(self):
        """Published days, newest first, LIMIT %s."""
        return self.d.sql("SELECT ds FROM {t} ORDER BY ds DESC LIMIT %s", t=self.table("publications"))

    def fresh_days(self):
        return self.d.sql("SELECT DISTINCT ds FROM {t} ORDER BY ds", t=self.table(FRESH))

    def latest_fresh_ds(self):
        return self.d.sql("SELECT max(ds) FROM {t}", t=self.table(FRESH))

    def current(self):
        """One user's rows of the ``_current`` view by rank; parameters: user, LIMIT."""
        return self.d.sql(
            "SELECT {c} FROM {v} WHERE user_id = %s ORDER BY rank LIMIT %s",
            c=self.cols(tables.ALL_SCHEMAS[FRESH].names), v=self.d.ident(self.names.schema, self.names.current),
        )

    def counts(self):
        """Rows per logical table on a day (the day once per table, then once more); no row if unpublished."""
        sub = [self.d.sql("(SELECT count(*) FROM {t} WHERE ds = %s)", t=self.table(name)) for name in LOGICAL]
        return self.d.sql("SELECT {s} FROM {p} WHERE ds = %s", s=self.d.join(sub), p=self.table("publications"))

    def top(self, logical: str, by_ds: bool):
        """Rows of one key (and day %s when ``by_ds``, else the latest view) by rank, LIMIT %s."""
        names = self.names
        source = self.table(logical) if by_ds else self.d.ident(names.schema, names.view(logical))
        day = " AND ds = %s" if by_ds else ""
        return self.d.sql(
            "SELECT {c} FROM {t} WHERE {k} = %s" + day + " ORDER BY rank LIMIT %s",
            c=self.cols(tables.ALL_SCHEMAS[logical].names), t=source, k=self.d.ident(tables.KEYS[logical][0]),
        )
