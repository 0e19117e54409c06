"""Daily snapshots built from the clean lake: behaviour sequences, items and users as of day D.

An event is visible on day D when its clean partition is ``<= D`` and its ``ts < D + 1 day``
(no future data); it becomes visible on ``avail = greatest(ds, to_date(ts))``. Every transform
takes the list of days to snapshot, so a backfill of many days is one Spark job, not one per day.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F


def days_frame(spark: SparkSession, days: list[dt.date]) -> DataFrame:
    return spark.createDataFrame([(d,) for d in days], "ds date")


def visible_events(clean_events: DataFrame, last_day: dt.date) -> DataFrame:
    """Events of partitions ``<= last_day``, deduplicated across partitions by event_id (the copy
    in the earliest partition wins, then earliest ts), with the day they become visible.

    Only the ids that occur more than once are shuffled with their rows."""
    events = clean_events.where(F.col("ds") <= F.lit(last_day))
    repeated = events.groupBy("event_id").count().where(F.col("count") > 1).select("event_id")
    cols = events.columns
    winners = (
        events.join(repeated, "event_id", "left_semi")
        .groupBy("event_id")
        .agg(F.min_by(F.struct(*cols), F.struct("ds", "ts", "item_id", "event_type")).alias("w"))
        .select("w.*")
    )
    deduped = events.join(repeated, "event_id", "left_anti").unionByName(winners)
    return deduped.withColumn("avail", F.greatest(F.col("ds"), F.to_date("ts")))


def build_sequences(events: DataFrame, days: DataFrame, max_len: int) -> DataFrame:
    """Per user and day: the last ``max_len`` visible behaviours in time order (ties by event_id)."""
    hist = events.groupBy("user_id").agg(
        F.sort_array(F.collect_list(F.struct("ts", "event_id", "item_id", "event_type", "value", "avail"))).alias("h"),
        F.min("avail").alias("first_avail"),
    )
    per_day = hist.join(F.broadcast(days), F.col("ds") >= F.col("first_avail")).select(
        "user_id", "ds", F.filter("h", lambda e: e["avail"] <= F.col("ds")).alias("v")
    )
    last = F.slice("v", F.greatest(F.size("v") - max_len + 1, F.lit(1)), max_len)
    return per_day.select(
        "user_id",
        F.transform(last, lambda e: e["item_id"]).alias("item_ids"),
        F.transform(last, lambda e: e["event_type"]).alias("event_types"),
        F.transform(last, lambda e: e["value"]).alias("values"),
        F.transform(last, lambda e: e["ts"]).alias("ts"),
        F.size("v").cast("long").alias("n_events"),
        F.element_at("v", -1)["ts"].alias("last_ts"),
        "ds",
    )


def as_of(df: DataFrame, key: str, day_col: str, days: DataFrame) -> DataFrame:
    """For every key and snapshot day D: the row with the greatest ``day_col <= D``."""
    w = Window.partitionBy(key).orderBy(day_col)
    bounded = df.withColumn("_next", F.lead(day_col).over(w))
    cond = (F.col("ds") >= F.col(day_col)) & (F.col("_next").isNull() | (F.col("ds") < F.col("_next")))
    return bounded.join(F.broadcast(days), cond).drop("_next")


def _running_stats(events: DataFrame, key: str, days: DataFrame, distinct_of: str | None) -> DataFrame:
    """Cumulative event counts and first/last ts per key, as of every snapshot day."""
    daily = events.groupBy(key, "avail").agg(
        F.count("*").alias("n"), F.min("ts").alias("lo"), F.max("ts").alias("hi")
    )
    w = Window.partitionBy(key).orderBy("avail").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    cols = [
        F.sum("n").over(w).alias("n_events"),
        F.min("lo").over(w).alias("first_event_ts"),
        F.max("hi").over(w).alias("last_event_ts"),
    ]
    running = daily.select(key, "avail", *cols)
    if distinct_of:
        # Distinct counts are not additive by day: count each (key, other) pair on its first day.
        firsts = events.groupBy(key, distinct_of).agg(F.min("avail").alias("avail"))
        new = firsts.groupBy(key, "avail").agg(F.count("*").alias("k"))
        running = running.join(new, [key, "avail"], "left").withColumn(
            f"n_{distinct_of.removesuffix('_id')}s", F.sum(F.coalesce("k", F.lit(0))).over(w)
        ).drop("k")
    return as_of(running, key, "avail", days).drop("avail")


def _stat_defaults(cols: list[str]) -> list[Column]:
    return [F.coalesce(F.col(c), F.lit(0)).cast("long").alias(c) if c.startswith("n_") else F.col(c) for c in cols]


def build_items(clean_items: DataFrame, events: DataFrame, days: DataFrame) -> DataFrame:
    """Catalogue as of each day (newest row per item), plus items seen only in events, with stats.

    ``in_catalogue`` is false for an item known only from events; ``n_events = 0`` marks a cold item.
    """
    catalogue = as_of(clean_items.withColumnRenamed("ds", "snapshot_ds"), "item_id", "snapshot_ds", days)
    stats = _running_stats(events, "item_id", days, "user_id")
    joined = catalogue.join(stats, ["item_id", "ds"], "full_outer")
    stat_cols = ["n_events", "n_users", "first_event_ts", "last_event_ts"]
    return joined.select(
        "item_id",
        "title",
        "description",
        F.coalesce("categories", F.array().cast("array<string>")).alias("categories"),
        F.coalesce("attributes", F.create_map().cast("map<string,string>")).alias("attributes"),
        F.coalesce("available", F.lit(True)).alias("available"),
        F.col("snapshot_ds").isNotNull().alias("in_catalogue"),
        "snapshot_ds",
        *_stat_defaults(stat_cols),
        "ds",
    )


def build_users(clean_users: DataFrame, events: DataFrame, days: DataFrame) -> DataFrame:
    """Users as of each day: newest profile row, plus users known only from events, with stats."""
    profiles = as_of(clean_users.withColumnRenamed("ds", "snapshot_ds"), "user_id", "snapshot_ds", days)
    stats = _running_stats(events, "user_id", days, None)
    joined = profiles.join(stats, ["user_id", "ds"], "full_outer")
    return joined.select(
        "user_id",
        F.coalesce("attributes", F.create_map().cast("map<string,string>")).alias("attributes"),
        "snapshot_ds",
        *_stat_defaults(["n_events", "first_event_ts", "last_event_ts"]),
        "ds",
    )
