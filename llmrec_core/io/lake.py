"""The lake on disk: raw partition discovery, partition publishing, run summaries.

Tables are Parquet directories partitioned by ``ds=YYYY-MM-DD`` (and, for quarantine, a second
level ``source=...``). A job writes its whole output to a staging directory in one Spark write,
then swaps each partition directory into place with renames, so a rerun replaces exactly the
partitions it computed (never appends) and a reader never lists a half-written partition.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_DS_DIR = re.compile(r"^ds=(\d{4}-\d{2}-\d{2})$")
RAW_SUFFIXES = (".jsonl", ".jsonl.gz")


def ds_dir(ds: dt.date) -> str:
    return f"ds={ds.isoformat()}"


def partition(table_dir: Path, ds: dt.date) -> Path:
    """The directory of one day's partition of a table."""
    return Path(table_dir) / ds_dir(ds)


def list_partitions(table_dir: Path) -> list[dt.date]:
    """Dates of the ``ds=`` partitions under a table directory, ascending."""
    if not table_dir.is_dir():
        return []
    days = []
    for child in table_dir.iterdir():
        m = _DS_DIR.match(child.name)
        if m and child.is_dir():
            days.append(dt.date.fromisoformat(m.group(1)))
    return sorted(days)


def raw_files(table_dir: Path, ds: dt.date) -> list[Path]:
    """Data files of one raw partition (JSON Lines, optionally gzip), sorted for determinism."""
    part = table_dir / ds_dir(ds)
    if not part.is_dir():
        return []
    return sorted(p for p in part.iterdir() if p.is_file() and p.name.endswith(RAW_SUFFIXES))


def fingerprint(files: list[Path]) -> str:
    """A watermark of a set of files (name, size, modification time): it changes when a file
    lands, grows or is replaced, and reading it costs one ``stat`` per file."""
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        digest.update(f"{f.name}\x1f{st.st_size}\x1f{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


@dataclass
class StagedWrite:
    """Partitions written and counted aside, not yet visible; ``commit`` swaps them in."""

    path: Path
    table_dir: Path
    partitions: list[str]
    counts: list[tuple]  # (*partition values, *count_by values, rows)

    def commit(self, only: Iterable[str] | None = None) -> None:
        """Make the staged content that of ``partitions`` (or of ``only`` among them); a listed
        partition that received no rows is removed, so a rerun never leaves stale rows."""
        self.table_dir.mkdir(parents=True, exist_ok=True)
        for rel in self.partitions if only is None else sorted(set(only) & set(self.partitions)):
            swap_dir(self.path / rel, self.table_dir / rel)


def write_staged(
    df, path: Path, table_dir: Path, partitions: Iterable[str], partition_by: list[str], count_by: tuple[str, ...] = ()
) -> StagedWrite:
    """Write ``df`` to ``path`` partitioned like ``table_dir`` and count the rows written by the
    partition columns and ``count_by``. Nothing in the table changes until ``commit``."""
    partitions = sorted(set(partitions))
    if len(partitions) >= 2 * df.sparkSession.sparkContext.defaultParallelism:
        # A backfill of many days: every task would write a file into every day. Cluster by
        # day first so each day gets one file. (Asking the DataFrame for its partition count
        # instead would run its shuffles under adaptive execution, twice the work.)
        df = df.repartition(*partition_by)
    start = time.perf_counter()
    df.write.mode("overwrite").partitionBy(*partition_by).parquet(str(path))
    log.info("wrote %d partition(s) of %s in %.1fs", len(partitions), Path(table_dir).name, time.perf_counter() - start)
    counts = _count_staged(df.sparkSession, path, [*partition_by, *count_by])
    return StagedWrite(path, Path(table_dir), partitions, counts)


def publish_partitions(df, table_dir: Path, partitions: Iterable[str], partition_by: list[str]) -> list[tuple]:
    """Write ``df`` and make it the content of exactly ``partitions`` (relative dirs, e.g.
    ``ds=2024-01-01``); returns the rows written per partition as ``(*values, rows)``."""
    table_dir = Path(table_dir)
    staging = table_dir.parent / "_staging" / f"{table_dir.name}-{uuid.uuid4().hex[:12]}"
    try:
        written = write_staged(df, staging, table_dir, partitions, partition_by)
        written.commit()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written.counts


def _count_staged(spark, staging: Path, by: list[str]) -> list[tuple]:
    if not any(staging.rglob("*.parquet")):
        return []
    staged = spark.read.option("basePath", str(staging)).parquet(str(staging))
    return [tuple(r) for r in staged.groupBy(*by).count().collect()]


def swap_dir(staged: Path, target: Path) -> None:
    """Replace ``target`` by ``staged`` (or remove it when nothing was staged) with renames."""
    trash = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.replace(target, trash)
    if staged.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
    shutil.rmtree(trash, ignore_errors=True)


def write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run_summary_path(runs_dir: Path, job: str, ds: dt.date) -> Path:
    return runs_dir / job / f"{ds_dir(ds)}.json"


def read_run_summary(runs_dir: Path, job: str, ds: dt.date) -> dict | None:
    path = run_summary_path(runs_dir, job, ds)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


class Staging:
    """Private scratch space of one run: ``stage(df, name)`` writes a DataFrame once to Parquet
    and returns it read back, so later steps reuse it instead of recomputing its lineage.
    Everything is removed on exit."""

    def __init__(self, root: Path, name: str):
        self.path = Path(root) / f"{name}-{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def stage(self, df, name: str):
        target = str(self.path / name)
        start = time.perf_counter()
        df.write.mode("overwrite").parquet(target)
        log.info("staged %s in %.1fs", name, time.perf_counter() - start)
        return df.sparkSession.read.schema(df.schema).parquet(target)
