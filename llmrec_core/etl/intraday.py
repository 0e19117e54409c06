"""The day in progress: the event files that have landed so far under ``raw/events/ds=D``,
cleaned with the nightly rules (their watermark: ``orchestration.tasks.landed``).

- :func:`clean_so_far` parses and checks every line with :mod:`llmrec_core.etl.clean` (the same
  checks, reason codes, duplicate and bot rules as ``clean_logs``) and returns the clean events
  and the quarantine. With ``until``, lines whose timestamp is at or after that moment are set
  aside as not yet happened (a replay of a past day); lines without a readable timestamp are
  judged as they are. Every line read is accounted for:
  ``read = clean + quarantined + duplicates + later``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql import functions as F

from llmrec_core.errors import LlmrecError
from llmrec_core.etl import clean, reconcile
from llmrec_core.io import lake
from llmrec_core.settings import Settings

log = logging.getLogger(__name__)
CLEAN_COLUMNS = ["event_id", "user_id", "item_id", "event_type", "value", "ts"]


@dataclass
class DaySoFar:
    events: pa.Table      # CLEAN_COLUMNS, ts as UTC timestamp
    quarantine: pa.Table  # reason, raw_line, source_file
    read: int
    duplicates: int
    later: int            # valid timestamps at or after ``until``: not yet happened

    @property
    def quarantined(self) -> int:
        return self.quarantine.num_rows

    def reasons(self) -> dict[str, int]:
        if not self.quarantine.num_rows:
            return {}
        counts = self.quarantine.group_by("reason").aggregate([("reason", "count")]).to_pylist()
        return {r["reason"]: r["reason_count"] for r in sorted(counts, key=lambda r: r["reason"])}

    def counts(self) -> dict[str, int]:
        return {"read": self.read, "clean": self.events.num_rows, "quarantined": self.quarantined,
                "duplicates": self.duplicates, "later": self.later}

    def summary(self, ds: dt.date, max_bad_share: float) -> reconcile.PartitionSummary:
        """The lines that have happened, judged as ``clean_logs`` judges a day (bad share, reconciliation)."""
        return reconcile.PartitionSummary("events", ds, self.read - self.later, self.events.num_rows, self.quarantined,
                                          self.duplicates, self.reasons(), max_bad_share)


def clean_so_far(spark, settings: Settings, ds: dt.date, until: dt.datetime | None = None) -> DaySoFar:
    """Clean every event line of ``raw/events/ds=D`` that has landed (see the module docstring)."""
    params = clean.CleanParams.from_settings(settings)
    with lake.Staging(settings.lake_dir / "_staging", "refresh-raw") as scratch:
        raw = clean.read_raw_lines(spark, settings.raw_table("events"), [ds], settings.clean.max_line_bytes, scratch=scratch.path)
        parsed = clean.parse_events(raw, params).localCheckpoint()  # eager: the scratch copies can go
        read = parsed.count()
    later = 0
    if until is not None:
        after = F.col("ts").isNotNull() & (F.col("ts") >= F.lit(until))
        later = parsed.where(after).count()
        parsed = parsed.where(~after)
    split = clean.label_events(parsed, params)
    events = split.clean.select(*CLEAN_COLUMNS).toArrow()
    quarantine = split.quarantine.select("reason", "raw_line", "source_file").toArrow()
    duplicates = sum(int(r["count"]) for r in split.duplicates.collect())
    out = DaySoFar(events.sort_by([("event_id", "ascending")]), quarantine, read, duplicates, later)
    if not out.summary(ds, settings.clean.max_bad_share).reconciled:
        raise LlmrecError(f"raw/events/ds={ds}: {out.counts()} does not reconcile (read = clean + quarantined + duplicates + later)")
    log.info("raw/events/ds=%s so far: %s", ds, out.counts())
    return out
