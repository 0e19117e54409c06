"""One writer per home, job and day.

``hold(home, job, days)`` takes an exclusive ``flock`` on ``$LLMREC_HOME/_locks/<job>/ds=D.lock``
for each day, in date order, so a second ``llmrec etl``/``train``/``score``/``refresh``/
``pipeline`` on a day that is being written fails at once with a line that names the holder,
instead of interleaving its writes with the first. The kernel drops the lock when its process
ends, however it ends, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from llmrec_core.errors import LlmrecError


class BusyError(LlmrecError):
    """Another process holds the lock of this job and day."""


def lock_path(home: Path, job: str, ds: dt.date) -> Path:
    return Path(home) / "_locks" / job / f"ds={ds.isoformat()}.lock"


@contextmanager
def _locked(path: Path, wait_s: float, busy: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (0600), retried for up to ``wait_s`` seconds; then
    :class:`BusyError` with ``busy``, its ``{who}`` naming the holder. The holder's pid, host and start are
    written into the file for the next one to name."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BusyError(busy.replace("{who}", _read_holder(fd))) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_holder(fd: int) -> str:
    try:
        who = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {who['pid']} on {who['host']} since {who['since']}"
    except (ValueError, KeyError, OSError):
        return "holder unknown"


def exclusive(home: Path, name: str, timeout: float = 60.0):
    """A lock on ``$LLMREC_HOME/_locks/<name>.lock`` that waits (up to ``timeout`` seconds)
    instead of failing: for short critical sections such as moving an alias."""
    path = Path(home) / "_locks" / f"{name}.lock"
    return _locked(path, timeout, f"{path} stayed locked for {timeout:.0f}s ({{who}})")


@contextmanager
def hold(home: Path, job: str, days: Iterable[dt.date]) -> Iterator[None]:
    """Hold the lock of ``job`` for every day of ``days`` (sorted, so two runs over overlapping
    ranges cannot deadlock), or raise :class:`BusyError` without waiting."""
    with ExitStack() as stack:
        for ds in sorted(set(days)):
            busy = f"another llmrec {job} for {ds} is running ({{who}}); wait for it to finish, or stop it, then run again"
            stack.enter_context(_locked(lock_path(home, job, ds), 0.0, busy))
        yield
