"""Write raw partitions (``raw/<table>/ds=YYYY-MM-DD/*.jsonl[.gz]``) exactly as docs/data-contract.md describes them.

Rows stream to disk through a small pool of open files, so an ingest of any size needs memory
for one row at a time. Everything goes to a staging directory first; ``commit`` swaps each
written partition into place (replacing an earlier ingest of the same day, never appending)
and drops a ``_SUCCESS`` marker in it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

from llmrec_core.io.lake import EMPTY, SUCCESS, ds_dir, swap_dir

_MAX_OPEN = 64


def utc_day(epoch_seconds: float) -> dt.date:
    return dt.datetime.fromtimestamp(epoch_seconds, dt.timezone.utc).date()


def iso_utc(epoch_seconds: float) -> str:
    return dt.datetime.fromtimestamp(epoch_seconds, dt.timezone.utc).isoformat().replace("+00:00", "Z")


class RawWriter:
    """Context manager: ``write(table, ds, obj)`` / ``write_line(table, ds, bytes)``, then commit."""

    def __init__(self, raw_dir: Path, *, gzip_output: bool = False, part_name: str = "part-00000"):
        self.raw_dir = Path(raw_dir)
        self.staging = self.raw_dir / f"_staging-{uuid.uuid4().hex[:12]}"
        self.suffix = ".jsonl.gz" if gzip_output else ".jsonl"
        self.part_name = part_name
        self._open: OrderedDict[tuple[str, dt.date], IO[bytes]] = OrderedDict()
        self._written: set[tuple[str, dt.date]] = set()
        self.rows: dict[str, int] = {}

    def __enter__(self) -> RawWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def _handle(self, table: str, ds: dt.date) -> IO[bytes]:
        key = (table, ds)
        fh = self._open.get(key)
        if fh is not None:
            self._open.move_to_end(key)
            return fh
        if len(self._open) >= _MAX_OPEN:
            _, oldest = self._open.popitem(last=False)
            oldest.close()
        path = self.staging / table / ds_dir(ds) / f"{self.part_name}{self.suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Appending gzip members yields a valid multi-member gzip stream.
        fh = gzip.open(path, "ab", compresslevel=1) if self.suffix.endswith(".gz") else open(path, "ab")
        self._open[key] = fh
        self._written.add(key)
        return fh

    def write_line(self, table: str, ds: dt.date, line: bytes) -> None:
        self._handle(table, ds).write(line if line.endswith(b"\n") else line + b"\n")
        self.rows[table] = self.rows.get(table, 0) + 1

    def write(self, table: str, ds: dt.date, obj: dict[str, Any]) -> None:
        self.write_line(table, ds, json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))

    def touch(self, table: str, ds: dt.date) -> None:
        """Declare a partition that may stay empty (a day with no events still exists)."""
        (self.staging / table / ds_dir(ds)).mkdir(parents=True, exist_ok=True)
        self._written.add((table, ds))

    def days(self, table: str) -> list[dt.date]:
        """Partitions written or declared so far for ``table``."""
        return sorted(d for t, d in self._written if t == table)

    def _close_all(self) -> None:
        while self._open:
            _, fh = self._open.popitem()
            fh.close()

    def commit(self) -> list[tuple[str, dt.date]]:
        self._close_all()
        done = sorted(self._written)
        for table, ds in done:
            staged = self.staging / table / ds_dir(ds)
            if not any(staged.iterdir()):
                (staged / EMPTY).touch()  # a declared day without rows, not a partition still filling
            (staged / SUCCESS).touch()
            swap_dir(staged, self.raw_dir / table / ds_dir(ds))
        shutil.rmtree(self.staging, ignore_errors=True)
        return done

    def abort(self) -> None:
        self._close_all()
        shutil.rmtree(self.staging, ignore_errors=True)
