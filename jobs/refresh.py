"""Intraday refresh: the lists of users who acted today, re-ranked with today's behaviours.

    python -m jobs.refresh --ds 1998-04-23 [--until 1998-04-23T12:00:00Z] [--model-version 3] [--if-changed]
        [--force [--forced-by NAME]]
    llmrec refresh --ds latest

D is the day in progress. Top to bottom: settings -> the model version (champion unless named;
one the promotion gate refused only with ``--force``, recorded in the run record, as for
``llmrec score``)
-> the event files landed so far under ``raw/events/ds=D``, cleaned with the nightly rules
(``--until``: only what happened before that moment, to replay a past day); the quarantine and
the clean events go to ``lake/intraday/{quarantine,events}/ds=D`` -> the lake snapshot of D-1
with today's behaviours appended -> the champion restored on it (with its cross-encoder when
``refresh.rerank`` asks for it, reading today's behaviours as text) -> each active user's new
list, reasons pointing at today's behaviours where they are the reason -> the nightly checks
-> ``user_recommendations_fresh`` replaced for D in one transaction -> the run record
``lake/_runs/refresh/ds=D.json`` with the watermark of the files it read.

The view ``user_recommendations_current`` shows each user's newest fresh rows until the nightly
rows of that day exist. A rerun over the same files gives the same rows; a later refresh of the
day supersedes the earlier one.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from jobs.common import ds_parser, guarded, run_main
from jobs.score import forced_lines, forced_record, load_version, rerank_head, user_table
from llmrec_core.data.snapshot import load_item_facets, load_snapshot
from llmrec_core.days import resolve_day
from llmrec_core.errors import DataQualityError, LlmrecError, MissingInputError
from llmrec_core.etl.intraday import DaySoFar, clean_so_far
from llmrec_core.io import lake
from llmrec_core.io.serving_schema import USER_RECOMMENDATIONS_FRESH
from llmrec_core.io.warehouse import Warehouse
from llmrec_core.orchestration.tasks import landed, refresh_pending
from llmrec_core.recommenders.portable import restore
from llmrec_core.recommenders.reranked import Reranked
from llmrec_core.scoring.filters import allowed_items
from llmrec_core.scoring.fresh import FreshDay, fresh_lists, with_fresh
from llmrec_core.scoring.validate import ValidationError, user_row_failures
from llmrec_core.settings import Settings, load_settings

log = logging.getLogger("jobs.refresh")
JOB = "refresh"


def _parse_until(value: str | None, ds: dt.date) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise LlmrecError(f"--until {value!r} is not an ISO-8601 moment (e.g. {ds}T12:00:00Z)") from None
    moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    start = dt.datetime.combine(ds, dt.time(), tzinfo=dt.UTC)
    if not start < moment <= start + dt.timedelta(days=1):
        raise LlmrecError(f"--until {value} is not within the day {ds} (UTC)")
    return moment


def _in_lake(settings: Settings, upto: dt.date, event_ids: pa.Array) -> np.ndarray:
    """Which of ``event_ids`` the clean lake already holds up to ``upto`` (a copy that landed twice)."""
    root = settings.lake_table("clean_events")
    if not len(event_ids) or not root.is_dir():
        return np.zeros(len(event_ids), bool)
    data = pads.dataset(root, format="parquet", partitioning=pads.partitioning(pa.schema([("ds", pa.date32())]), flavor="hive"))
    found = data.to_table(columns=["event_id"], filter=(pc.field("ds") <= pa.scalar(upto)) & pc.field("event_id").isin(event_ids))
    return pc.is_in(event_ids, value_set=found["event_id"].unique()).to_numpy(zero_copy_only=False)


def _write_intraday(settings: Settings, ds: dt.date, so_far: DaySoFar) -> None:
    """The clean events and the quarantine of the day so far, each replaced with one rename."""
    import pyarrow.parquet as pq

    for name, table in (("events", so_far.events), ("quarantine", so_far.quarantine)):
        with lake.Staging(settings.lake_dir / "_staging", f"{JOB}-{name}") as staging:
            staging.path.mkdir(parents=True)
            pq.write_table(table, staging.path / "part-0.parquet")
            lake.swap_dir(staging.path, lake.partition(settings.lake_dir / "intraday" / name, ds))


def fresh_table(day: FreshDay, ds: dt.date, rows: pa.Table, *, model_name: str, version: str, run_id: str,
                refreshed_at: dt.datetime) -> pa.Table:
    base = user_table(day.snap, ds, rows, model_name=model_name, version=version, run_id=run_id)
    n = base.num_rows
    return base.append_column("refreshed_at", pa.repeat(pa.scalar(refreshed_at, pa.timestamp("us", tz="UTC")), n)).append_column(
        "fresh_events", pa.array(day.per_user[rows["user"].to_numpy()], pa.int32())).cast(USER_RECOMMENDATIONS_FRESH)


def run(settings: Settings, ds: dt.date, until: str | None = None, model_version: str | None = None, spark=None,
        force: bool = False, forced_by: str | None = None) -> dict:
    """Refresh ``ds`` so far and publish it. ``force`` refreshes with a version the gate refused
    (the one a forced nightly run serves); the run record then carries ``forced``, ``forced_by``
    and ``forced_reason``."""
    started = time.perf_counter()
    moment = _parse_until(until, ds)
    previous = ds - dt.timedelta(days=1)
    mv, bundle = load_version(settings, model_version, previous, force=force)
    forced = forced_record(mv, forced_by)
    files, mark = landed(settings, ds)
    if not files:
        raise MissingInputError(f"no event file has landed under {lake.partition(settings.raw_table('events'), ds)}")
    snap = load_snapshot(settings, previous)
    ready = time.perf_counter()
    if spark is None:
        from llmrec_core.io.spark import get_spark

        spark = get_spark(settings.spark, "llmrec-refresh")
    spark_ready = time.perf_counter()
    so_far = clean_so_far(spark, settings, ds, moment)
    _write_intraday(settings, ds, so_far)
    judged = so_far.summary(ds, settings.clean.max_bad_share)
    if not judged.passed:
        raise DataQualityError(f"raw/events/ds={ds} so far: {judged.invalid} of {judged.read} lines invalid, above "
                               f"clean.max_bad_share={settings.clean.max_bad_share}; quarantine in lake/intraday/quarantine/ds={ds}")
    cleaned = time.perf_counter()
    day = with_fresh(settings, snap, so_far.events, _in_lake(settings, previous, so_far.events["event_id"]))
    rs = settings.refresh
    rec = restore(bundle.model, day.snap, settings.scoring.device, reranker=rerank_head(rs.rerank, bundle, settings.scoring.device),
                  text=settings.text)
    categories, attributes = load_item_facets(settings, previous)
    allowed = day.snap.item_available & allowed_items(settings.scoring.filters, categories, attributes)
    now = dt.datetime.now(dt.UTC)
    asof = moment or min(now, dt.datetime.combine(ds + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC))
    restored = time.perf_counter()
    rows, sc = fresh_lists(settings, day, rec, allowed, int(asof.timestamp()))
    ranked = time.perf_counter()
    failures, _ = user_row_failures(rows, seen=(sc.history.indptr, day.snap.events.item), allowed=allowed, k=settings.scoring.k,
                                    users=day.users)
    if failures:
        raise ValidationError(failures)
    run_id = f"refresh-{uuid.uuid4().hex[:12]}"
    name = settings.tracking.registered_model
    table = fresh_table(day, ds, rows, model_name=name, version=str(mv.version), run_id=run_id, refreshed_at=now)
    with Warehouse.open(settings) as wh:
        published = wh.publish_fresh(ds, table, keep_days=settings.warehouse.keep_days)
        target = f"{wh.kind} {wh.where}"
    seconds = {"start": ready - started, "spark_start": spark_ready - ready, "clean": cleaned - spark_ready,
               "restore": restored - cleaned, "rank": ranked - restored, "publish": time.perf_counter() - ranked,
               "total": time.perf_counter() - started}
    sources = dict(zip(*np.unique(rows["source"].to_numpy(zero_copy_only=False), return_counts=True), strict=True)) if len(rows) else {}
    record = {"ds": str(ds), "until": None if moment is None else moment.isoformat(), "watermark": mark, "files": len(files),
              "model_version": str(mv.version), "model": bundle.meta.get("model", "llmrec"), "refreshed_at": now.isoformat(), "run_id": run_id, "lines": so_far.counts(),
              "quarantine_reasons": so_far.reasons(), "behaviours": day.counts, "rows": published,
              "sources": {k: int(v) for k, v in sources.items()}, "reranked": isinstance(rec, Reranked),
              "seconds": {k: round(v, 3) for k, v in seconds.items()}, "warehouse": target, **forced}
    lake.write_json_atomic(lake.run_summary_path(settings.runs_dir, JOB, ds), record)
    log.info("refreshed %s: %d users, %d rows in %.1fs", ds, len(day.users), published, seconds["total"])
    return record


def summary(out: dict) -> str:
    lines, beh = out["lines"], out["behaviours"]
    until = f" until {out['until']}" if out["until"] else ""
    return "\n".join([
        f"refreshed {out['ds']}{until} with version {out['model_version']} ({out['model']}) into {out['warehouse']}:",
        *forced_lines(out),
        f"  lines    read={lines['read']:,} clean={lines['clean']:,} quarantined={lines['quarantined']:,} "
        f"duplicates={lines['duplicates']:,} later={lines['later']:,}",
        f"  today    {beh['users']:,} users with {beh['fresh']:,} new behaviours ({beh['new_users']:,} new users; "
        f"{beh['already_in_lake']:,} already in the lake, {beh['unknown_item']:,} on items not in the catalogue yet)",
        f"  rows     {out['rows']:,} in user_recommendations_fresh; re-ranked: {'yes' if out['reranked'] else 'no'}; "
        f"{out['seconds']['total']:.1f}s in all, {out['seconds']['rank']:.1f}s ranking",
    ])


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = ds_parser(JOB, __doc__, "the day in progress", prog)
    parser.add_argument("--until", help="only events before this moment (ISO-8601; UTC when no offset): replay a past day")
    parser.add_argument("--model-version", help="registered version to use (default: the champion)")
    parser.add_argument("--if-changed", action="store_true", help="do nothing when no file landed since the last refresh")
    parser.add_argument("--force", action="store_true", help="refresh with a version the promotion gate refused (recorded in the run record)")
    parser.add_argument("--forced-by", help="who forces it, for the record (default: this OS user)")
    args = parser.parse_args(argv)

    def go():
        settings = load_settings(args.config)
        ds = resolve_day(args.ds, settings.raw_table("events"))
        if args.if_changed and not args.until:
            from llmrec_core.orchestration.tasks import champion_version

            version = args.model_version or champion_version(settings)
            if (why := refresh_pending(ds, version, settings)) is not None:
                print(f"skipped: {why}")
                return
        with guarded(settings, JOB, [ds]):
            print(summary(run(settings, ds, args.until, args.model_version, force=args.force, forced_by=args.forced_by)))
    return run_main(go)


if __name__ == "__main__":
    raise SystemExit(main())
