"""Which days a run covers: one ``--ds``, an inclusive ``--start``/``--end`` range, or ``--all``."""

from __future__ import annotations

import argparse
import datetime as dt
import logging

from llmrec_core.errors import LlmrecError, MissingInputError
from llmrec_core.io import lake
from llmrec_core.settings import Settings

log = logging.getLogger(__name__)


def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


def add_day_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--ds", type=parse_day, help="the day to process (UTC, YYYY-MM-DD)")
    group.add_argument("--start", type=parse_day, help="first day of a backfill range (with --end)")
    group.add_argument("--all", action="store_true", help="every day that has a raw events partition")
    parser.add_argument("--end", type=parse_day, help="last day of a backfill range, inclusive")


def day_range(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def resolve_days(args: argparse.Namespace, settings: Settings) -> list[dt.date]:
    """The days to run; a single ``--ds`` must have its raw events partition."""
    events_dir = settings.raw_table("events")
    present = lake.list_partitions(events_dir)
    if args.ds:
        if args.end:
            raise LlmrecError("--end goes with --start, not with --ds")
        if args.ds not in present:
            raise MissingInputError(f"raw partition not found: {events_dir / lake.ds_dir(args.ds)}")
        return [args.ds]
    if args.all:
        if not present:
            raise MissingInputError(f"no raw events partitions under {events_dir}; run `llmrec ingest` first")
        start, end = present[0], present[-1]
    else:
        if not args.end:
            raise LlmrecError("--start needs --end")
        start, end = args.start, args.end
    if end < start:
        raise LlmrecError(f"--end {end} is before --start {start}")
    days = day_range(start, end)
    missing = sorted(set(days) - set(present))
    if missing:
        log.warning("%d of %d days have no raw events partition (first: %s)", len(missing), len(days), missing[0])
    return days
