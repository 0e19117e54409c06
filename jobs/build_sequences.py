"""Build the daily snapshots of the lake: behaviour sequences, items and users as of day D.

    python -m jobs.build_sequences --ds 2024-01-31 [--config llmrec.yaml]
    python -m jobs.build_sequences --start 2024-01-01 --end 2024-01-31
    spark-submit jobs/build_sequences.py --all

For each day D: ``lake/sequences/ds=D`` (per user, the last ``sequences.max_len`` behaviours with
ts < D + 1 day), ``lake/items/ds=D`` and ``lake/users/ds=D`` (newest snapshot row per id with
ds <= D, plus ids seen only in events, with running counts). Refuses to run while a day up to D
has raw events that were never cleaned.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys

from jobs.common import day_job, run_main
from llmrec_core.errors import MissingInputError
from llmrec_core.etl import schemas
from llmrec_core.etl import sequences as seq
from llmrec_core.io import lake
from llmrec_core.settings import Settings

log = logging.getLogger(__name__)
JOB = "build_sequences"
OUTPUTS = ("sequences", "items", "users")


def check_cleaned(settings: Settings, last_day: dt.date) -> None:
    """Every raw events day up to ``last_day`` must have a passing clean run."""
    missing = []
    for d in lake.list_partitions(settings.raw_table("events")):
        if d > last_day:
            break
        summary = lake.read_run_summary(settings.runs_dir, "clean_logs/events", d)
        if not summary or not summary.get("passed"):
            missing.append(d)
    if missing:
        raise MissingInputError(
            f"{len(missing)} day(s) up to {last_day} have raw events but no passing clean run "
            f"(first: {missing[0]}); run `llmrec etl --start {missing[0]} --end {last_day}`"
        )


def read_clean(spark, settings: Settings, table: str, schema):
    path = settings.lake_table(table)
    if not lake.list_partitions(path):
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).parquet(str(path))


def run(spark, settings: Settings, days: list[dt.date]) -> dict[str, dict[str, int]]:
    last = max(days)
    check_cleaned(settings, last)
    items = read_clean(spark, settings, "clean_items", schemas.CLEAN_ITEMS).where(f"ds <= '{last}'")
    users = read_clean(spark, settings, "clean_users", schemas.CLEAN_USERS).where(f"ds <= '{last}'")
    day_df = seq.days_frame(spark, days)
    partitions = [lake.ds_dir(d) for d in days]
    counts: dict[str, dict[str, int]] = {d.isoformat(): {} for d in days}
    with lake.Staging(settings.lake_dir / "_staging", JOB) as staging:
        clean_events = read_clean(spark, settings, "clean_events", schemas.CLEAN_EVENTS)
        events = staging.stage(seq.visible_events(clean_events, last), "events")
        frames = {
            "sequences": seq.build_sequences(events, day_df, settings.sequences.max_len),
            "items": seq.build_items(items, events, day_df),
            "users": seq.build_users(users, events, day_df),
        }
        for name, df in frames.items():
            for ds, n in lake.publish_partitions(df, settings.lake_table(name), partitions, ["ds"]):
                counts[ds.isoformat()][name] = n
    for d in days:
        c = {name: counts[d.isoformat()].get(name, 0) for name in OUTPUTS}
        lake.write_json_atomic(lake.run_summary_path(settings.runs_dir, JOB, d), {"ds": d.isoformat(), **c})
    log.info("snapshots for %d day(s) %s..%s; last day: %s", len(days), days[0], last, counts[last.isoformat()])
    return counts


def main(argv: list[str] | None = None) -> dict[str, dict[str, int]]:
    return day_job(JOB, __doc__, run, argv)


if __name__ == "__main__":
    sys.exit(run_main(main))
