"""A day's publication outside the database: its three Arrow tables checked against the serving
schemas, the error a refused publish raises, and the Parquet copies under ``lake/serving/``.

Used by :mod:`llmrec_core.io.warehouse`, which re-exports ``PublishError`` and
``write_parquet_copies``; the Parquet copies are for Spark and pandas readers of the lake.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from llmrec_core.errors import LlmrecError
from llmrec_core.io import serving_schema as serving
from llmrec_core.io.lake import ds_dir, list_partitions, swap_dir, write_json_atomic

log = logging.getLogger(__name__)
LOGICAL = tuple(serving.SCHEMAS)


class PublishError(LlmrecError):
    """Staged rows failed a check; nothing was published. ``failures``: (check, table, rows, detail)."""

    def __init__(self, ds: dt.date, failures: list[tuple[str, str, int, str]]):
        self.failures = failures
        detail = "; ".join(f"{table}: {check}: {what}" for check, table, _, what in failures)
        super().__init__(f"publish of {ds} refused, nothing was published: {detail}")


MANIFEST = "_published.json"


def _manifest(root: Path) -> dict[str, str]:
    path = root / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_parquet_copies(lake_dir: Path, ds: dt.date, tables: dict[str, pa.Table], keep_days: int, run_id: str | None = None) -> None:
    """Write ``lake/serving/<table>/ds=YYYY-MM-DD/part-0.parquet`` for each table, replacing the
    partition in one atomic step, remove partitions older than ``keep_days`` before the newest
    day, and record in ``lake/serving/_published.json`` which run's rows the copies of each day hold.

    ``ds`` lives in the directory name only, as in the Spark-written lake partitions."""
    root = Path(lake_dir) / "serving"
    for name, table in conform(ds, tables).items():
        table_dir = root / name
        staging = root / "_staging" / f"{name}-{uuid.uuid4().hex[:12]}"
        try:
            staging.mkdir(parents=True)
            pq.write_table(table.drop_columns(["ds"]), staging / "part-0.parquet")
            swap_dir(staging, table_dir / ds_dir(ds))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        days = list_partitions(table_dir)
        # As in the warehouse: from the newest day, and never the day before it.
        cutoff = min(days[-1] - dt.timedelta(days=keep_days), days[-2] if len(days) > 1 else days[-1])
        for day in days:
            if day < cutoff:
                # Nothing staged: the partition is renamed away, then deleted.
                swap_dir(root / "_staging" / "nothing", table_dir / ds_dir(day))
    kept = set(list_partitions(root / LOGICAL[0]))
    manifest = {d: r for d, r in _manifest(root).items() if dt.date.fromisoformat(d) in kept}
    write_json_atomic(root / MANIFEST, {**manifest, str(ds): run_id})
    log.info("wrote the Parquet copies of %s under %s", ds, root)


def reconcile_parquet_copies(lake_dir: Path, warehouse, keep_days: int) -> list[dt.date]:
    """Make the Parquet copies hold exactly what the warehouse publishes: a day whose copies
    are missing or hold another run's rows (a crash between the warehouse commit and the copies)
    is written again from the warehouse, and a copy of a day the warehouse does not publish is
    removed. Returns the days repaired."""
    root = Path(lake_dir) / "serving"
    published = warehouse.publication_runs()
    recorded = _manifest(root)
    repaired = []
    for ds, run_id in published.items():
        if recorded.get(str(ds)) != run_id or any(not (root / name / ds_dir(ds)).is_dir() for name in LOGICAL):
            write_parquet_copies(lake_dir, ds, warehouse.read_day(ds), keep_days, run_id)
            repaired.append(ds)
    for name in LOGICAL:
        for day in list_partitions(root / name):
            if day not in published:
                swap_dir(root / "_staging" / "nothing", root / name / ds_dir(day))
                repaired.append(day)
    if repaired:
        write_json_atomic(root / MANIFEST, {str(d): r for d, r in published.items()})
        log.warning("Parquet copies under %s repaired to match the warehouse for %s", root, sorted(set(map(str, repaired))))
    return sorted(set(repaired))


def conform(ds: dt.date, tables: dict[str, pa.Table], logical: tuple[str, ...] = LOGICAL) -> dict[str, pa.Table]:
    """``tables`` (exactly the ``logical`` ones) with exactly the columns of ``serving.ALL_SCHEMAS``, in order."""
    failures = []
    if set(tables) != set(logical):
        failures.append(("tables", ", ".join(sorted(set(tables) ^ set(logical))), 0,
                         f"a publish needs exactly the tables {list(logical)}, got {sorted(tables)}"))
    out = {}
    for name in logical:
        if name not in tables:
            continue
        schema, table = serving.ALL_SCHEMAS[name], tables[name]
        missing = [c for c in schema.names if c not in table.column_names]
        extra = [c for c in table.column_names if c not in schema.names]
        try:
            if missing or extra:
                raise ValueError(f"missing columns {missing}, unexpected columns {extra}")
            out[name] = table.select(schema.names).cast(schema)
        except (ValueError, TypeError, pa.ArrowException) as err:
            failures.append(("schema", name, table.num_rows, str(err)))
    if failures:
        raise PublishError(ds, failures)
    return out
