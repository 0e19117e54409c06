"""The serving tables and views: their columns (as Arrow schemas), keys and descriptions.

The scoring job builds these tables; the warehouse creates, stages and publishes them with
exactly these columns, in this order, enforces the keys, and writes the descriptions into the
database as the comment of every table, view and column. docs/serving-tables.md is rendered
from this module, and a test fails when the two differ:

    python -m llmrec_core.io.serving_schema > docs/serving-tables.md
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

USER_RECOMMENDATIONS = pa.schema([
    ("ds", pa.date32()), ("user_id", pa.string()), ("rank", pa.int32()), ("item_id", pa.string()),
    ("score", pa.float64()), ("reason", pa.string()), ("source", pa.string()), ("model_name", pa.string()),
    ("model_version", pa.string()), ("run_id", pa.string()),
])
ITEM_RECOMMENDATIONS = pa.schema([
    ("ds", pa.date32()), ("item_id", pa.string()), ("rank", pa.int32()), ("rec_item_id", pa.string()),
    ("score", pa.float64()), ("model_version", pa.string()),
])
ITEM_AUDIENCE = pa.schema([
    ("ds", pa.date32()), ("item_id", pa.string()), ("rank", pa.int32()), ("user_id", pa.string()),
    ("score", pa.float64()), ("model_version", pa.string()),
])
SCHEMAS = {
    "user_recommendations": USER_RECOMMENDATIONS,
    "item_recommendations": ITEM_RECOMMENDATIONS,
    "item_audience": ITEM_AUDIENCE,
}
# The intraday refresh's rows: the nightly user columns, when they were refreshed and from how
# many of the day's behaviours. Not part of a nightly publish (``SCHEMAS``); see ``ALL_SCHEMAS``.
FRESH = "user_recommendations_fresh"
USER_RECOMMENDATIONS_FRESH = pa.schema([*USER_RECOMMENDATIONS, ("refreshed_at", pa.timestamp("us", tz="UTC")),
                                        ("fresh_events", pa.int32())])
ALL_SCHEMAS = {**SCHEMAS, FRESH: USER_RECOMMENDATIONS_FRESH}
# One row per published nightly day.
PUBLICATIONS = pa.schema([
    ("ds", pa.date32()), ("published_at", pa.timestamp("us", tz="UTC")), ("run_id", pa.string()), ("model_name", pa.string()),
    ("model_version", pa.string()), *((f"rows_{name}", pa.int64()) for name in SCHEMAS), ("model", pa.string()),
])
TABLES = {**ALL_SCHEMAS, "publications": PUBLICATIONS}
# Columns a table gained after warehouses with it existed: at its end, NULL in rows written before
# (ALTER TABLE ... ADD COLUMN, the rest of the table untouched), so they are the only nullable ones.
ADDED_COLUMNS = {"publications": ("model",)}
# Each view and the table whose columns it shows; a view is named after its configured table.
CURRENT = "user_recommendations_current"
VIEWS = {**{f"{name}_latest": name for name in SCHEMAS}, CURRENT: FRESH}
# The same SQL type names on DuckDB and Postgres (DuckDB reports TEXT as VARCHAR, DOUBLE PRECISION as DOUBLE).
SQL_TYPES = {
    pa.date32(): "DATE", pa.string(): "TEXT", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE PRECISION", pa.timestamp("us", tz="UTC"): "TIMESTAMP WITH TIME ZONE",
}
# The key of each table: (ds, KEY[0], rank) and (ds, KEY[0], KEY[1]) are unique; every publish checks both.
KEYS = {
    "user_recommendations": ("user_id", "item_id"),
    "item_recommendations": ("item_id", "rec_item_id"),
    "item_audience": ("item_id", "user_id"),
    FRESH: ("user_id", "item_id"),
}
# The first is each table's PRIMARY KEY, enforced by the database: the natural key, in the order a
# list is read. A refresh replaces its whole day, so a day of fresh rows is one refresh's and
# refreshed_at is not part of their key. The second is no constraint: a second index would more
# than double the size of a DuckDB warehouse file again.
PRIMARY_KEYS = {**{name: ("ds", key, "rank") for name, (key, _) in KEYS.items()}, "publications": ("ds",)}
SOURCES = ("model", "cold_text", "popularity_fallback")
# How a user is scored, an index into SOURCES: from history, from profile text only, from nothing.
MODEL, COLD_TEXT, POPULAR = 0, 1, 2


@dataclass(frozen=True)
class Described:
    """What a table or view holds and what each of its columns means: its comments in the database."""

    about: str
    columns: dict[str, str]


_VERSION = "The registered model version that scored the day."
_USER_COLUMNS = {
    "ds": "The day D the list is for, computed from everything known up to the end of D (UTC).",
    "user_id": "The user the list is for.",
    "rank": "Position in the user's list: 1 = best, then 2, 3 ... without gaps.",
    "item_id": "The recommended item: available, allowed by scoring.filters and not seen by the user.",
    "score": ("The recommender's score, not increasing along the ranks. For model and cold_text rows of the language model, "
              "the calibrated click logit (sigmoid(score) = p(click)) unless the day was re-ranked or the item is new and ranked "
              "with the user's taste (model.cold_taste_weight); for popularity_fallback "
              "rows, the item's share of recent positive events (docs/data-contract.md, What score means)."),
    "reason": "Why the item is recommended, in words, from the user's own history (Because you rated Fargo (1996) highly); when the list is the same for everyone (a popularity model serving), that it is popular.",
    "source": ("How the user was scored: model (from the behaviour history), cold_text (from the profile text, or an item "
               "the model never saw, from its text) or popularity_fallback (neither, or a model that cannot rank for the user: "
               "a baseline other than popularity for a user known only by profile, ALS for a user it was not trained on)."),
    "model_name": "The registered model's name (tracking.registered_model).",
    "model_version": _VERSION,
    "run_id": "The MLflow run of the scoring job (experiment llmrec, tag kind=scoring).",
}
_FRESH_COLUMNS = {
    **_USER_COLUMNS,
    "ds": "The day in progress D that the refresh ranked: the nightly snapshot of D-1 plus the behaviours of D so far.",
    "model_version": "The registered model version that ranked the refresh.",
    "run_id": "The refresh's id (refresh-..., also in lake/_runs/refresh/ds=D.json).",
    "refreshed_at": "When the refresh ran, an instant written in UTC; the same on every row of a day.",
    "fresh_events": "How many of the user's behaviours of day D the list used.",
}
_TABLES = {
    "user_recommendations": Described(
        "Each user's top scoring.k items for day ds, published by the nightly scoring (llmrec score); a rerun of a day replaces it.",
        _USER_COLUMNS),
    "item_recommendations": Described(
        "Similar items: for every catalogue item of day ds, unavailable ones included, up to scoring.similar_k other items.",
        {"ds": "The day D of the catalogue and the model.", "item_id": "The item.",
         "rank": "1 = most similar, then 2, 3 ... without gaps.", "rec_item_id": "A similar item: allowed, and not item_id itself.",
         "score": ("Cosine similarity of the model's item vectors; for a model without item vectors, the popularity "
                   "fallback's share of recent positive events."),
         "model_version": _VERSION}),
    "item_audience": Described(
        "For every item of day ds, up to scoring.audience_k users most likely to want it, among those who have not engaged with it.",
        {"ds": "The day D of the catalogue and the model.", "item_id": "The item.",
         "rank": "1 = most likely to want the item, then 2, 3 ... without gaps.",
         "user_id": "A user with a history or a profile who has not engaged with the item yet.",
         "score": ("The recommender's score for (user_id, item_id); for the language model, log p(the user comes back "
                   "within model.return_horizon_days days and clicks the item): the log of the user's return rate, "
                   "by days since their last behaviour, plus the log of the calibrated click probability (for a new "
                   "item ranked with the user's taste, model.cold_taste_weight, the blended score in its place). When the "
                   "version serves model.audience share, the click term is w log(1 + the user's behaviours) + log p(item | "
                   "user), the softmax of the model's scores over the catalogue (docs/data-contract.md)."),
         "model_version": _VERSION}),
    FRESH: Described(
        ("Intraday lists of the day in progress, for the users who acted on it so far, written by llmrec refresh; "
         "each refresh replaces all rows of its day."),
        _FRESH_COLUMNS),
    "publications": Described(
        "One row per published nightly day: when, by which scoring run and model version, and how many rows each table got.",
        {"ds": "The published day.", "published_at": "When the publishing transaction ran, an instant written in UTC.",
         "run_id": "The MLflow run of the scoring job that published the day.",
         "model_name": "The registered model's name (tracking.registered_model).", "model_version": _VERSION,
         **{f"rows_{name}": f"Rows of {name} published for the day." for name in SCHEMAS},
         "model": ("Which model the version is: llmrec (the language model) or the baseline the promotion gate registered "
                   "and served instead (popularity, item_knn, ease, als, content); NULL for days published before this column existed, or by a version that does not say."),
         }),
}
_LATEST = {f"{name}_latest": Described(
    f"The rows of {name} of the newest day in publications; backfilling an older day does not change it.",
    _TABLES[name].columns) for name in SCHEMAS}
DESCRIPTIONS = {
    **_TABLES, **_LATEST,
    CURRENT: Described(
        ("What each user should see now: the user's fresh rows of the newest refreshed day when that day is after the newest "
         "published nightly day, otherwise the user's nightly rows of that day."),
        {**_FRESH_COLUMNS,
         "ds": "The user's refreshed day when it is after the newest published nightly day, otherwise that nightly day.",
         "model_version": "The registered model version that ranked the row.",
         "run_id": "The refresh's id on fresh rows; the MLflow run of the scoring job on nightly rows.",
         "refreshed_at": "When the refresh ran, an instant written in UTC; NULL on nightly rows.",
         "fresh_events": "How many of the user's behaviours of the refreshed day the list used; 0 on nightly rows."}),
}


def columns_of(name: str) -> pa.Schema:
    """The columns of a table or view, by logical name."""
    return TABLES[VIEWS.get(name, name)]


def comments() -> dict[tuple[str, str | None], str]:
    """The comment of every table and view (column None) and of each of their columns, by logical name."""
    out = {}
    for name, described in DESCRIPTIONS.items():
        out[(name, None)] = described.about
        out.update({(name, column): described.columns[column] for column in columns_of(name).names})
    return out


DOC_HEAD = """# Serving tables

<!-- Rendered from llmrec_core/io/serving_schema.py: python -m llmrec_core.io.serving_schema > docs/serving-tables.md
     Edit the descriptions there; tests/io/test_table_comments.py fails when this file and the code disagree. -->

The nightly scoring (`llmrec score`) and the intraday refresh (`llmrec refresh`) publish into these
tables, in the DuckDB file `$LLMREC_HOME/warehouse.duckdb` or in Postgres (`LLMREC_WAREHOUSE_URL`).
The names are the defaults: the `warehouse` settings choose the schema and rename the tables, and
each view is named after its table. Every column of a table is `NOT NULL` but `publications.model`
(NULL for days published before it existed), and the primary keys are enforced by the database.
Timestamps are `TIMESTAMP WITH TIME ZONE`: instants, written in UTC.
How a day is checked and published, and the retention: docs/data-contract.md, "Serving tables".

The same texts are in the database, as the comment of every table, view and column:
`\\d+ user_recommendations` in psql, or
`SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'user_recommendations'` in DuckDB.

A warehouse made by an older version is brought up to date in place by its next publish: each
table missing its primary key gets it (or the publish is refused, naming the table, when its rows
break the key), a `published_at` without time zone becomes `TIMESTAMP WITH TIME ZONE` (its values
were written in UTC), and the comments are written.
"""


def _keys(name: str) -> str:
    if name in VIEWS:
        return f"A view: one row per `({', '.join(PRIMARY_KEYS[VIEWS[name]][1:])})`, not enforced."
    pair = f" Also unique, checked by every publish: `(ds, {', '.join(KEYS[name])})`." if name in KEYS else ""
    return f"Primary key: `({', '.join(PRIMARY_KEYS[name])})`.{pair}"


def _section(name: str) -> str:
    described = DESCRIPTIONS[name]
    rows = [f"| `{f.name}` | {f.type} | {SQL_TYPES[f.type]} | {described.columns[f.name]} |" for f in columns_of(name)]
    return "\n".join([f"### `{name}`", "", described.about, "", _keys(name), "",
                      "| column | Arrow | SQL | meaning |", "|---|---|---|---|", *rows, ""])


def markdown() -> str:
    """docs/serving-tables.md: every table and view, its keys, and each column's types and meaning."""
    parts = [DOC_HEAD, "## Tables", "", *map(_section, TABLES), "## Views", "", *map(_section, VIEWS)]
    return "\n".join(parts).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
