"""The day a run is for (``ds``): parsed once, at the edge, with one meaning of ``latest``.

Every command, job and DAG task turns what a person typed (``--ds``, the ``ds`` param of a DAG
run, an asset event) into a :class:`datetime.date` here, and passes dates from then on.

- A day is an ISO date, ``YYYY-MM-DD``, in UTC.
- ``latest`` is the newest day that has landed: the newest ``raw/events/ds=...`` partition.
  A job that needs that day's lake snapshot says so when the ETL has not built it yet.
- A day after today (UTC, plus ``FUTURE_TOLERANCE``) is never a day to process: naming one is
  refused, and a partition of one is skipped with a warning when looking for ``latest`` or
  ``--all``. One stray ``raw/events/ds=2099-01-01`` would otherwise become the newest day for
  training, scoring and retention.
- Anything else is a :class:`DayError`: ``not a day: '1998-13-01' (YYYY-MM-DD or 'latest')``.

A scheduled DAG run without a ``ds`` param processes the day before its logical date (the
01:00 run processes the day that just ended): :func:`scheduled_day`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path

from llmrec_core.errors import LlmrecError, MissingInputError
from llmrec_core.io import lake

log = logging.getLogger(__name__)
LATEST = "latest"
# How far past the current UTC time a day may start: clocks of producers drift.
FUTURE_TOLERANCE = dt.timedelta(hours=1)


def last_allowed_day(now: dt.datetime | None = None) -> dt.date:
    """The newest day that may be processed: today (UTC), or tomorrow within the tolerance of midnight."""
    return ((now or dt.datetime.now(dt.UTC)) + FUTURE_TOLERANCE).astimezone(dt.UTC).date()


def refuse_future(ds: dt.date, now: dt.datetime | None = None) -> dt.date:
    """``ds``, or a clear error when it lies in the future."""
    now = now or dt.datetime.now(dt.UTC)
    if ds > last_allowed_day(now):
        today = now.astimezone(dt.UTC).date()
        raise LlmrecError(f"{ds} is in the future (today is {today} UTC): refused; "
                          "a raw partition of a future day is a producer's mistake, move or delete it")
    return ds


def landed_days(raw_events: Path, now: dt.datetime | None = None) -> list[dt.date]:
    """The days with a raw events partition, without days in the future (each skipped with a warning)."""
    days = lake.list_partitions(raw_events)
    limit = last_allowed_day(now)
    future = [d for d in days if d > limit]
    if future:
        log.warning("skipping %d raw events partition(s) in the future (after %s UTC): %s", len(future), limit,
                    ", ".join(str(lake.partition(raw_events, d)) for d in future[:3]))
    return [d for d in days if d <= limit]


class DayError(LlmrecError):
    """A value that is not a day."""

    def __init__(self, value: object, *, latest: bool = True):
        allowed = "YYYY-MM-DD or 'latest'" if latest else "YYYY-MM-DD"
        super().__init__(f"not a day: {str(value)!r} ({allowed})")


def parse_day(value: str | dt.date) -> dt.date:
    """A day from its ISO form; ``latest`` is not accepted here (see :func:`resolve_day`)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise DayError(value, latest=False) from None


def latest_day(raw_events: Path) -> dt.date:
    """The newest day with a raw events partition (days in the future are not candidates)."""
    days = landed_days(raw_events)
    if not days:
        raise MissingInputError(f"no raw events partitions under {raw_events}: run `llmrec ingest` first")
    return days[-1]


def resolve_day(value: str | dt.date | None, raw_events: Path) -> dt.date:
    """A day, or ``latest`` (also an empty value): the newest day with raw events."""
    if value is None or (isinstance(value, str) and value.strip() in ("", LATEST)):
        return latest_day(raw_events)
    try:
        day = parse_day(value)
    except DayError:
        raise DayError(value) from None
    return refuse_future(day)


def scheduled_day(param: str | None, logical_date: dt.datetime | None, raw_events: Path) -> dt.date:
    """The day of a DAG run: the ``ds`` param when given (a day or ``latest``), else the day
    before the logical date, else the day before today (UTC)."""
    if param:
        return resolve_day(param, raw_events)
    when = logical_date or dt.datetime.now(dt.UTC)
    return when.date() - dt.timedelta(days=1)


def add_day_arg(parser: argparse.ArgumentParser, what: str, *, default: str | None = LATEST) -> None:
    """``--ds`` for a single-day job, resolved later with :func:`resolve_day`."""
    parser.add_argument("--ds", default=default, required=default is None,
                        help=f"{what} (YYYY-MM-DD, or 'latest': the newest day with raw events; default {default})")


def add_day_range_args(parser: argparse.ArgumentParser) -> None:
    """``--ds D`` | ``--start A --end B`` | ``--all``, resolved later with :func:`resolve_days`."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--ds", help="the day to process (YYYY-MM-DD or 'latest')")
    group.add_argument("--start", help="first day of a backfill range (with --end)")
    group.add_argument("--all", action="store_true", help="every day that has a raw events partition")
    parser.add_argument("--end", help="last day of a backfill range, inclusive")


def day_range(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def resolve_days(args: argparse.Namespace, raw_events: Path) -> list[dt.date]:
    """The days of ``--ds``/``--start --end``/``--all``; a single ``--ds`` must have its raw partition."""
    present = landed_days(raw_events)
    if args.ds:
        if args.end:
            raise LlmrecError("--end goes with --start, not with --ds")
        ds = resolve_day(args.ds, raw_events)
        if ds not in present:
            raise MissingInputError(f"raw partition not found: {lake.partition(raw_events, ds)}")
        return [ds]
    if args.all:
        if not present:
            raise MissingInputError(f"no raw events partitions under {raw_events}; run `llmrec ingest` first")
        start, end = present[0], present[-1]
    else:
        if not args.end:
            raise LlmrecError("--start needs --end")
        start, end = parse_day(args.start), refuse_future(parse_day(args.end))
    if end < start:
        raise LlmrecError(f"--end {end} is before --start {start}")
    days = day_range(start, end)
    missing = sorted(set(days) - set(present))
    if missing:
        log.warning("%d of %d days have no raw events partition (first: %s)", len(missing), len(days), missing[0])
    return days
