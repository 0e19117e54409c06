"""The lake on disk: raw partition discovery, partition publishing, run summaries.

Tables are Parquet directories partitioned by ``ds=YYYY-MM-DD`` (and, for quarantine, a second
level ``source=...``). A job writes its whole output to a staging directory in one Spark write,
then swaps each partition directory into place in one atomic step (:func:`swap_dir`), so a rerun
replaces exactly the partitions it computed (never appends), a reader never lists a half-written
partition, and a crash never leaves one missing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llmrec_core.errors import LlmrecError

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
    """Data files of one raw partition (JSON Lines, optionally gzip), sorted for determinism.

    A symbolic link is followed only when it stays under ``raw/``: one that leads elsewhere
    (another user's files, ``/etc``) is refused with an error naming it."""
    part = table_dir / ds_dir(ds)
    if not part.is_dir():
        return []
    files = sorted(p for p in part.iterdir() if p.is_file() and p.name.endswith(RAW_SUFFIXES))
    raw_root = Path(table_dir).resolve().parent
    for f in files:
        if f.is_symlink() and not f.resolve().is_relative_to(raw_root):
            raise LlmrecError(f"{f} is a symbolic link to {f.resolve()}, outside {raw_root}: refusing to read it")
    return files


_HADOOP_GLOB = re.compile(r"([\\\[\]{}*?])")


def literal_path(path: Path | str) -> str:
    """``path`` for Spark's readers, which take ``[``, ``{``, ``*`` and ``?`` as glob patterns:
    each escaped, so a file named ``a[1].jsonl`` is read as itself."""
    return _HADOOP_GLOB.sub(r"\\\1", str(path))


_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def _lines(path: Path, limit: int, keep: int = 1024, bodies: bool = True):
    """The lines of a raw file (gzip or not) as Hadoop's reader splits them (LF, CR or CRLF), in
    4 MiB blocks so memory stays bounded whatever the file holds. Yields (bytes with the line
    break, line break, and either ``b""`` and the line itself or, when it is ``limit`` bytes or
    more with its break (a line that reader, given the same limit, skips), its first ``keep``
    bytes and None. Without ``bodies``, a short line's body is ``b""`` too: a scan copies nothing
    but the heads of long lines."""
    import gzip

    length, head, body, carry = 0, bytearray(), bytearray(), b""
    with (gzip.open if str(path).endswith(".gz") else open)(path, "rb") as f:
        while True:
            block = f.read(1 << 22)
            data = carry + block
            carry = b""
            if block and data.endswith(b"\r"):
                data, carry = data[:-1], b"\r"  # it may be the first half of CRLF
            start = 0
            for brk in _LINE_BREAK.finditer(data):
                piece, end = data[start:brk.start()], brk.group()
                length += len(piece)
                if len(head) < keep:
                    head += piece[: keep - len(head)]
                short = length + len(end) < limit
                if short and bodies:
                    body += piece
                yield length + len(end), end, (b"" if short else bytes(head)), (bytes(body) if short else None)
                length, head, body, start = 0, bytearray(), bytearray(), brk.end()
            rest = data[start:]
            length += len(rest)
            if len(head) < keep:
                head += rest[: keep - len(head)]
            if length < limit and bodies:
                body += rest
            else:
                body = bytearray()
            if not block:
                break
    if length:
        yield length, b"", (b"" if length < limit else bytes(head)), (bytes(body) if length < limit else None)


def long_lines(path: Path, limit: int, keep: int = 1024) -> list[tuple[int, bytes]]:
    """The lines of a raw file of ``limit`` bytes or more (line break included), as (bytes,
    first ``keep`` bytes); see :func:`_lines`."""
    return [(size, head) for size, _, head, body in _lines(path, limit, keep, bodies=False) if body is None]


def without_long_lines(path: Path, limit: int, copy: Path, marker: str) -> None:
    """Write ``copy``, the raw file ``path`` with each line of ``limit`` bytes or more replaced
    by ``marker``, its size and its first KiB: every other byte, line break and the compression
    as they were, so the copy has the same lines, one for one."""
    import gzip

    copy.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open(copy, "wb", compresslevel=1) if str(path).endswith(".gz") else open(copy, "wb")) as out:
        for size, end, head, body in _lines(path, limit):
            if body is None:
                out.write(f"{marker}{size} bytes: ".encode() + head.decode("utf-8", "replace").encode() + (end or b"\n"))
            else:
                out.write(body + end)


SUCCESS, EMPTY = "_SUCCESS", "_EMPTY"


def not_ready(table_dir: Path, ds: dt.date, require_marker: bool) -> str | None:
    """Why the raw partition of ``ds`` must not be read yet, or None when it can be: it must
    exist and, with ``require_marker``, hold its producer's ``_SUCCESS`` marker."""
    part = partition(table_dir, ds)
    if not part.is_dir():
        return f"raw partition not found: {part}"
    if require_marker and not (part / SUCCESS).is_file():
        return (f"{part} has no {SUCCESS} marker: its producer has not finished writing it "
                "(producers that cannot write one: set clean.require_success_marker: false)")
    return None


def declared_empty(table_dir: Path, ds: dt.date) -> bool:
    """The producer marked the partition of ``ds`` as a day that had no rows (``_EMPTY``)."""
    return (partition(table_dir, ds) / EMPTY).is_file()


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
    """Make ``staged`` the content of ``target`` (or remove ``target`` when nothing was staged)
    in one atomic step: a reader, or a process killed at any instant, sees either the old
    partition or the new one, never neither.

    A new partition is one rename. Replacing one exchanges the two directories with one
    ``renameat2(RENAME_EXCHANGE)`` (``renamex_np(RENAME_SWAP)`` on macOS), after which the old
    content sits at ``staged`` and is deleted. Where the filesystem cannot exchange (NFS, some
    FUSE mounts), the two renames are journaled first, and :func:`recover` finishes or undoes
    a commit a crash interrupted; every job calls it before it reads the lake."""
    staged, target = Path(staged), Path(target)
    if staged.exists():
        private_tree(staged)
    if not staged.exists():
        if target.exists():
            trash = target.with_name(f"_removed.{target.name}.{uuid.uuid4().hex[:8]}")
            os.replace(target, trash)
            shutil.rmtree(trash, ignore_errors=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.rename(staged, target)
        return
    if _exchange(staged, target):
        shutil.rmtree(staged, ignore_errors=True)
        return
    _journaled_swap(staged, target)


def private_tree(root: Path) -> None:
    """Directories 0700 and files 0600 under ``root``, whatever wrote them with whatever umask
    (a Spark JVM started by ``spark-submit`` has its launcher's): the lake holds user data."""
    os.chmod(root, 0o700)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o700)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o600)


_RENAME_EXCHANGE = 2  # linux/fs.h; RENAME_SWAP has the same value on macOS
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the platform or filesystem cannot."""
    import ctypes
    import ctypes.util
    import errno
    import sys

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        result = libc.renamex_np(os.fsencode(a), os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE))
    elif sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        result = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE))
    else:
        return False
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


_JOURNAL = "_commit.{name}.json"


def _alive(intent: dict) -> bool:
    if intent.get("host") != socket.gethostname() or intent.get("pid") in (None, os.getpid()):
        return False
    try:
        os.kill(intent["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _journaled_swap(staged: Path, target: Path) -> None:
    """Two renames behind an intent record: ``recover`` rolls an interrupted one forward."""
    trash = target.with_name(f"_replaced.{target.name}.{uuid.uuid4().hex[:8]}")
    journal = target.parent / _JOURNAL.format(name=target.name)
    write_json_atomic(journal, {"target": str(target), "staged": str(staged), "trash": str(trash),
                                "pid": os.getpid(), "host": socket.gethostname()})
    os.replace(target, trash)
    try:
        os.replace(staged, target)
    except BaseException:
        os.replace(trash, target)
        journal.unlink()
        raise
    journal.unlink()
    shutil.rmtree(trash, ignore_errors=True)


def recover(root: Path) -> list[Path]:
    """Finish the journaled commits under ``root`` that a crash interrupted; returns the
    partitions repaired. Idempotent, and cheap when there is nothing to do."""
    repaired = []
    for journal in sorted(Path(root).rglob(_JOURNAL.format(name="*"))):
        intent = json.loads(journal.read_text(encoding="utf-8"))
        if _alive(intent):
            continue  # a commit in progress, not an interrupted one
        target, staged, trash = (Path(intent[k]) for k in ("target", "staged", "trash"))
        if not target.exists():
            # Killed between the two renames: the new content is complete, roll forward; the
            # staging may have been cleaned up by an exception handler, then roll back.
            source = staged if staged.exists() else trash
            if source.exists():
                os.replace(source, target)
                repaired.append(target)
                log.warning("recovered %s from an interrupted commit (%s)", target, "new" if source == staged else "previous")
        journal.unlink()
        shutil.rmtree(trash, ignore_errors=True)
    return repaired


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
