"""Clean raw event lines: validate, normalise timestamps to UTC, derive ids, dedupe, filter bots.

Every input row ends up clean, quarantined (with a reason code from ``schemas.REASONS``) or
counted as a duplicate; ``reconcile`` checks ``read = clean + quarantined + duplicates`` per day.
Duplicates are found per day by event id; the copy kept is the earliest by (ts, raw_line,
source_file).

Derived event ids: ``sha256(user_id, item_id, event_type, value, ts)`` joined by U+001F, with
value as Spark's double-to-string (empty when null) and ts as UTC epoch microseconds; the first
32 hex digits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from llmrec_core.etl import jsonfields as J
from llmrec_core.etl.reconcile import BOT_REASON
from llmrec_core.etl.schemas import RAW_LINES
from llmrec_core.io import lake

# Epoch seconds beyond year 9999 cannot name a real instant.
_MAX_EPOCH_SECONDS = 253_402_300_799
_ISO_NO_OFFSET = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?$"


@dataclass(frozen=True)
class CleanParams:
    event_types: tuple[str, ...]
    rating_type: str
    rating_min: float
    rating_max: float
    max_id_length: int
    future_tolerance_hours: float
    bot_max_events_per_minute: int
    now: dt.datetime | None = None  # injectable for tests; default: the run's wall clock

    @classmethod
    def from_settings(cls, settings) -> CleanParams:
        fb, cl = settings.feedback, settings.clean
        return cls(
            event_types=tuple(fb.event_types),
            rating_type=fb.rating_type,
            rating_min=fb.rating_min,
            rating_max=fb.rating_max,
            max_id_length=cl.max_id_length,
            future_tolerance_hours=cl.future_tolerance_hours,
            bot_max_events_per_minute=cl.bot_max_events_per_minute,
        )


def _ts_column() -> Column:
    """UTC timestamp from ``ts__t``/``ts__s``/``ts__d`` (ISO-8601 string or epoch seconds)."""
    typ, text, secs = J.t("ts"), F.trim(J.s("ts")), F.col("ts__d")
    # Spark's parser takes +hh:mm, +hhmm, +hh and Z, but wants seconds; hh:mm alone is ISO too.
    from_iso = F.coalesce(F.try_to_timestamp(text), F.try_to_timestamp(text, F.lit("yyyy-MM-dd'T'HH:mmXXX")))
    from_epoch = F.when(F.abs(secs) <= _MAX_EPOCH_SECONDS, F.timestamp_seconds(secs))
    return F.when(typ == "STRING", from_iso).when(J.is_numeric(typ), from_epoch)


def _checks(params: CleanParams) -> list[tuple[Column, str]]:
    """Every check after the line-level ones, against the materialised field columns."""
    ts_t, ts_s, ts = J.t("ts"), F.trim(J.s("ts")), F.col("ts")
    etype_t, etype = J.t("event_type"), J.s("event_type")
    value_t, value = J.t("value"), F.col("value__d")
    is_rating = etype == params.rating_type
    day_end = F.to_timestamp(F.date_add(F.col("ds"), 1))
    tolerance = F.expr(f"INTERVAL {int(params.future_tolerance_hours * 3600)} SECONDS")
    now = F.lit(params.now) if params.now else F.current_timestamp()
    # Spark's parser also takes strings without an offset (as session time) and bare dates; a
    # parsed value must also show a time part and end in Z or +-hh[:mm]. No regex on good rows.
    tail = lambda n: F.substring(ts_s, -n, 1).isin("+", "-")  # noqa: E731
    has_time = F.substring(ts_s, 11, 1).isin("T", " ")
    looks_iso = has_time & (ts_s.endswith("Z") | ts_s.endswith("z") | tail(6) | tail(5) | tail(3))
    bad_iso = (ts_t == "STRING") & (ts.isNull() | ~looks_iso)
    return (
        J.id_checks(["event_id", "user_id", "item_id"], params.max_id_length, optional=("event_id",))
        + [
            (J.is_absent(etype_t) | ((etype_t == "STRING") & (F.trim(etype) == "")), "missing_event_type"),
            ((etype_t != "STRING") | ~etype.isin(*params.event_types), "unknown_event_type"),
            (is_rating & J.is_absent(value_t), "missing_rating"),
            (is_rating & ~J.is_numeric(value_t), "rating_not_numeric"),
            (is_rating & ((value < params.rating_min) | (value > params.rating_max)), "rating_out_of_range"),
            (~J.is_absent(value_t) & ~J.is_numeric(value_t), "value_not_numeric"),
            (J.is_absent(ts_t), "missing_ts"),
            (bad_iso & F.upper(ts_s).rlike(_ISO_NO_OFFSET), "ts_no_offset"),
            (bad_iso, "ts_unparsable"),
            (ts.isNull(), "ts_unparsable"),
            (ts < F.lit(dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)), "ts_before_1970"),
            ((ts >= day_end + tolerance) | (ts > now + tolerance), "ts_in_future"),
        ]
    )


FIELDS = ["event_id", "user_id", "item_id", "event_type", "value", "ts"]


def parse_events(raw: DataFrame, params: CleanParams) -> DataFrame:
    """Raw lines (``schemas.RAW_LINES``) -> typed events with a ``reason`` (NULL when valid).

    Each projection materialises what the next uses several times: the parsed line, each
    field's JSON type and value, then the timestamp.
    """
    fields = J.parse_fields(raw, FIELDS, {"value__d": ("value", "double", "numeric"), "ts__d": ("ts", "double", "numeric")})
    typed = fields.withColumn("ts", _ts_column())
    checks = J.line_checks() + _checks(params)
    parsed = J.finish(
        typed,
        checks,
        J.s("event_id").alias("_given_id"),
        J.s("user_id").alias("user_id"),
        J.s("item_id").alias("item_id"),
        J.s("event_type").alias("event_type"),
        F.col("value__d").alias("value"),
        F.col("ts"),
    )
    id_parts = [
        "user_id",
        "item_id",
        "event_type",
        F.coalesce(F.col("value").cast("string"), F.lit("")),
        F.unix_micros("ts").cast("string"),
    ]
    derived = F.substring(F.sha2(F.concat_ws("\u001f", *id_parts), 256), 1, 32)
    given = F.col("_given_id")
    event_id = F.when(given.isNotNull() & (F.trim(given) != ""), given).otherwise(derived)
    return parsed.withColumn("event_id", event_id).drop("_given_id")


EVENT_COLUMNS = ("event_id", "user_id", "item_id", "event_type", "value", "ts", "ds")


def duplicate_groups(parsed: DataFrame) -> DataFrame:
    """(ds, event_id, n) for every event id that occurs more than once among a day's valid rows.

    Narrow: only keys are shuffled, never whole rows."""
    return (
        parsed.where(F.col("reason").isNull())
        .groupBy("ds", "event_id")
        .agg(F.count("*").alias("n"))
        .where(F.col("n") > 1)
    )


def first_copies(parsed: DataFrame, dup_groups: DataFrame) -> DataFrame:
    """One row per (ds, event_id) among valid rows: singles as they are, and for each duplicate
    group the earliest copy by (ts, raw_line, source_file)."""
    valid = parsed.where(F.col("reason").isNull())
    keys = dup_groups.select("ds", "event_id")
    singles = valid.join(keys, ["ds", "event_id"], "left_anti")
    order = F.struct("ts", "raw_line", "source_file")
    row = F.struct(*EVENT_COLUMNS, "raw_line", "source_file")
    winners = (
        valid.join(keys, ["ds", "event_id"], "left_semi")
        .groupBy("ds", "event_id")
        .agg(F.min_by(row, order).alias("w"))
        .select("w.*")
    )
    return singles.select(*EVENT_COLUMNS, "raw_line", "source_file").unionByName(winners)


def bot_users(parsed: DataFrame, max_events_per_minute: int) -> DataFrame:
    """(ds, user_id) of users with more than the allowed distinct events in some minute of a day.

    Distinct event ids, so resent duplicates count once. Only minutes whose plain row count is
    over the limit can qualify; those few are found by a count that combines before the shuffle,
    and only they pay for the distinct count."""
    valid = parsed.where(F.col("reason").isNull()).select(
        "ds", "user_id", "event_id", F.date_trunc("minute", "ts").alias("minute")
    )
    keys = ["ds", "user_id", "minute"]
    busy = valid.groupBy(*keys).count().where(F.col("count") > max_events_per_minute).select(*keys)
    return (
        valid.join(busy, keys, "left_semi")
        .groupBy(*keys)
        .agg(F.count_distinct("event_id").alias("n"))
        .where(F.col("n") > max_events_per_minute)
        .select("ds", "user_id")
        .distinct()
    )


@dataclass
class Split:
    """The outcome of cleaning one source. The job counts what it writes from ``clean`` and
    ``quarantine``, so only reads and duplicates need frames of their own."""

    parsed: DataFrame  # one row per raw line read, with ``reason`` (NULL when valid)
    clean: DataFrame  # the table's columns, ``ds`` last
    quarantine: DataFrame  # reason, raw_line, source_file, ds
    duplicates: DataFrame  # ds, count: rows dropped as second copies


def split_events(parsed: DataFrame, dup_groups: DataFrame, bots: DataFrame) -> Split:
    """Clean rows (first copies of non-bots), quarantine (invalid rows and bots' rows), duplicates.

    The job stages ``parsed``, ``dup_groups`` and ``bots`` so that each is computed once."""
    firsts = first_copies(parsed, dup_groups)
    clean = firsts.join(bots, ["ds", "user_id"], "left_anti").select(*EVENT_COLUMNS)
    bot_rows = firsts.join(bots, ["ds", "user_id"], "left_semi")
    invalid = parsed.where(F.col("reason").isNotNull())
    quarantine = invalid.select("reason", "raw_line", "source_file", "ds").unionByName(
        bot_rows.select(F.lit(BOT_REASON).alias("reason"), "raw_line", "source_file", "ds")
    )
    duplicates = dup_groups.groupBy("ds").agg(F.sum(F.col("n") - 1).alias("count"))
    return Split(parsed, clean, quarantine, duplicates)


def label_events(parsed: DataFrame, params: CleanParams) -> Split:
    """``split_events`` for small inputs: the job stages to Parquet, this checkpoints in memory.

    Either way each intermediate is computed once and later plans stay small."""
    parsed = parsed.localCheckpoint()
    dups = duplicate_groups(parsed).localCheckpoint()
    bots = bot_users(parsed, params.bot_max_events_per_minute).localCheckpoint()
    return split_events(parsed, dups, bots)


def read_raw_lines(spark, table_dir: Path, days: list[dt.date], max_line_bytes: int = 1 << 20, scratch: Path | None = None):
    """One row per raw line of the given partitions: (ds, source_file, line).

    Files are listed here, not globbed by Spark, so only ``*.jsonl``/``*.jsonl.gz`` are read, a
    day without a partition simply contributes nothing, and a file name with glob characters is
    read as itself. Gzip and CRLF are handled by the reader.

    No line of ``max_line_bytes`` or more is ever held whole. A scan in bounded memory
    (``lake.long_lines``) finds them; a file that has one is read from a copy under ``scratch``
    in which each such line is replaced by ``jsonfields.TOO_LONG``, its size and its first KiB,
    which the line checks quarantine as ``line_too_long``. ``source_file`` still names the
    original, and every line is still one row, so the counts reconcile.
    """
    files = [f for d in days for f in lake.raw_files(table_dir, d)]
    if not files:
        return spark.createDataFrame([], RAW_LINES)
    read, copies = [], None
    for f in files:
        if lake.long_lines(f, max_line_bytes):
            if scratch is None:
                raise ValueError("raw lines longer than max_line_bytes need a scratch directory")
            copies = Path(scratch) / "raw-lines"
            copy = copies / f.parent.name / f.name
            lake.without_long_lines(f, max_line_bytes, copy, J.TOO_LONG)
            read.append(copy)
        else:
            read.append(f)
    source = F.col("_metadata.file_path")
    df = spark.read.text([lake.literal_path(f) for f in read]).select(F.col("value").alias("line"), source.alias("source_file"))
    if copies is not None:
        # The copies sit at <scratch>/raw-lines/ds=D/<name>: name the original file instead.
        original = F.concat(F.lit("file://" + str(Path(table_dir).resolve()) + "/"), F.substring_index(source, "/", -2))
        df = df.withColumn("source_file", F.when(source.contains(str(copies) + "/"), original).otherwise(F.col("source_file")))
    # .../ds=YYYY-MM-DD/file: string functions, not a regex per row.
    ds = F.to_date(F.substring_index(F.substring_index("source_file", "/ds=", -1), "/", 1))
    return df.select(ds.alias("ds"), "source_file", "line")
