"""Clean one day (or a backfill range) of raw logs into the lake.

    python -m jobs.clean_logs --ds 2024-01-31 [--config llmrec.yaml]
    python -m jobs.clean_logs --start 2024-01-01 --end 2024-01-31
    spark-submit jobs/clean_logs.py --all

Reads ``raw/{events,items,users}/ds=D``, writes ``lake/clean_events``, ``lake/clean_items``,
``lake/clean_users`` and ``lake/quarantine`` (partition ``ds=D/source=...``), and a reconciled
summary per source and day under ``lake/_runs/clean_logs/``. A range runs in one Spark application.
A day whose bad share exceeds ``clean.max_bad_share`` keeps its previous clean output, has its
quarantine written for inspection, and fails the job with the counts.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from dataclasses import dataclass
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common import day_job, run_main
from llmrec_core.errors import DataQualityError, LlmrecError
from llmrec_core.etl import catalog, clean, reconcile, schemas
from llmrec_core.io import lake
from llmrec_core.settings import Settings

log = logging.getLogger(__name__)
JOB = "clean_logs"


Stage = Callable[[DataFrame, str], DataFrame]


@dataclass(frozen=True)
class Source:
    name: str
    table: str
    split: Callable[[DataFrame, Settings, Stage], clean.Split]


def _split_events(raw: DataFrame, settings: Settings, stage: Stage) -> clean.Split:
    params = clean.CleanParams.from_settings(settings)
    parsed = stage(clean.parse_events(raw, params), "parsed")
    dups = stage(clean.duplicate_groups(parsed), "duplicate_groups")
    bots = stage(clean.bot_users(parsed, params.bot_max_events_per_minute), "bots")
    return clean.split_events(parsed, dups, bots)


def _split_items(raw: DataFrame, settings: Settings, stage: Stage) -> clean.Split:
    c = settings.clean
    parsed = stage(catalog.parse_items(raw, max_id_length=c.max_id_length, max_text_length=c.max_text_length), "parsed")
    return catalog.split_snapshot(parsed, "item_id", tuple(schemas.CLEAN_ITEMS.fieldNames()))


def _split_users(raw: DataFrame, settings: Settings, stage: Stage) -> clean.Split:
    parsed = stage(catalog.parse_users(raw, max_id_length=settings.clean.max_id_length), "parsed")
    return catalog.split_snapshot(parsed, "user_id", tuple(schemas.CLEAN_USERS.fieldNames()))


SOURCES = (
    Source("events", "clean_events", _split_events),
    Source("items", "clean_items", _split_items),
    Source("users", "clean_users", _split_users),
)


def clean_source(spark, settings: Settings, source: Source, days: list[dt.date]) -> list[reconcile.PartitionSummary]:
    raw_dir = settings.raw_table(source.name)
    # Only days whose raw partition of this source exists and is complete are (re)placed.
    present = []
    for d in days:
        if (raw_dir / lake.ds_dir(d)).is_dir():
            if (why := lake.not_ready(raw_dir, d, settings.clean.require_success_marker)) is None:
                present.append(d)
            else:
                log.warning("%s: left as it is: %s", source.name, why)
    watermarks = {d: lake.fingerprint(lake.raw_files(raw_dir, d)) for d in present}
    with lake.Staging(settings.lake_dir / "_staging", f"{JOB}-{source.name}") as staging:
        raw = clean.read_raw_lines(spark, raw_dir, present, settings.clean.max_line_bytes, scratch=staging.path)
        split = source.split(raw, settings, staging.stage)
        # The staged parse holds one row per raw line: reads and invalid rows are counted there.
        pre = split.parsed.groupBy("ds").agg(F.count("*").alias("read"), F.count("reason").alias("invalid")).collect()
        read_counts = {r["ds"]: r["read"] for r in pre}
        if source.name == "events" and not settings.clean.allow_empty_days:
            empty = [d for d in present if not read_counts.get(d) and not lake.declared_empty(raw_dir, d)]
            if empty:
                raise DataQualityError(
                    f"no events in {', '.join(str(lake.partition(raw_dir, d)) for d in empty)}: refusing to replace "
                    "the clean data of a day with nothing (a producer declares a day without events with an "
                    f"{lake.EMPTY} marker; clean.allow_empty_days: true accepts any empty day)")
        too_bad = {r["ds"] for r in pre if reconcile.over_threshold(r["read"], r["invalid"], settings.clean.max_bad_share)}
        clean_written = lake.write_staged(
            split.clean, staging.path / "clean", settings.lake_table(source.table), [lake.ds_dir(d) for d in present], ["ds"]
        )
        quarantine_written = lake.write_staged(
            split.quarantine.withColumn("source", F.lit(source.name)),
            staging.path / "quarantine",
            settings.lake_table("quarantine"),
            [f"{lake.ds_dir(d)}/source={source.name}" for d in present],
            ["ds", "source"],
            count_by=("reason",),
        )
        status_counts = (
            [(ds, "clean", None, n) for ds, n in clean_written.counts]
            + [(ds, "quarantined", reason, n) for ds, _, reason, n in quarantine_written.counts]
            + [(r["ds"], "duplicate", None, r["count"]) for r in split.duplicates.collect()]
        )
        # Both checks run before anything becomes visible: a mismatch publishes nothing.
        summaries = reconcile.summarize(source.name, present, read_counts, status_counts, settings.clean.max_bad_share)
        if {s.ds for s in summaries if not s.passed} != too_bad:
            raise LlmrecError(f"{source.name}: invalid rows counted before and after writing disagree")
        # Until the new summaries are written, these days count as never cleaned: a crash from
        # here on makes the next run clean them again rather than trust the previous summary.
        for d in present:
            lake.run_summary_path(settings.runs_dir, f"{JOB}/{source.name}", d).unlink(missing_ok=True)
        # A failed day keeps its previous clean output but gets its quarantine written for inspection.
        clean_written.commit(only=[lake.ds_dir(d) for d in present if d not in too_bad])
        quarantine_written.commit()
    for s in summaries:
        # The raw files as cleaned: files that land later change it, and the day is cleaned again.
        lake.write_json_atomic(lake.run_summary_path(settings.runs_dir, f"{JOB}/{source.name}", s.ds),
                               {**s.to_dict(), "raw_watermark": watermarks[s.ds]})
        if s.passed:
            log.debug("%s", s.line())
        else:
            log.error("%s  FAILED: bad share %.1f%% above threshold", s.line(), 100 * s.bad_share)
    if summaries:
        log.info("%s over %d partition(s): %s", source.name, len(summaries), reconcile.total(summaries).line())
    else:
        log.info("%s: no raw partition in the run", source.name)
    return summaries


def run(spark, settings: Settings, days: list[dt.date]) -> list[reconcile.PartitionSummary]:
    summaries = [s for src in SOURCES for s in clean_source(spark, settings, src, days)]
    failed = [s for s in summaries if not s.passed]
    if failed:
        raise DataQualityError(
            "bad share above clean.max_bad_share="
            f"{settings.clean.max_bad_share} in: "
            + "; ".join(f"raw/{s.source}/ds={s.ds} ({s.invalid} of {s.read} rows invalid, {s.bad_share:.1%})" for s in failed)
        )
    return summaries


def main(argv: list[str] | None = None) -> list[reconcile.PartitionSummary]:
    return day_job(JOB, __doc__, run, argv)


if __name__ == "__main__":
    sys.exit(run_main(main))
