"""Progress of long steps (encoding, epochs, scoring blocks): a bar on a terminal, plain lines in
a log.

A bar redraws itself with carriage returns, which a task log or a file keeps as one unreadable
line. So :func:`progress` draws a tqdm bar only when standard error is a terminal; elsewhere (an
Airflow task log, ``llmrec pipeline``'s log file, a redirected run) it logs a plain line at most
every ``every_s`` seconds, and one when the step ends, with the count, rate and elapsed time.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

log = logging.getLogger(__name__)
T = TypeVar("T")
EVERY_S = 30.0


class Lines:
    """The plain-line form: iterates like tqdm and keeps the last ``set_postfix`` for its lines."""

    def __init__(self, iterable: Iterable[T], desc: str, total: int | None, every_s: float):
        self.iterable, self.desc, self.total, self.every_s = iterable, desc, total, every_s
        self.postfix = ""

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def __iter__(self) -> Iterator[T]:
        started = last = time.monotonic()
        n = 0
        for item in self.iterable:
            yield item
            n += 1
            if time.monotonic() - last >= self.every_s:
                last = time.monotonic()
                self._line(n, last - started)
        self._line(n, time.monotonic() - started, done=True)

    def _line(self, n: int, seconds: float, done: bool = False) -> None:
        count = f"{n:,}/{self.total:,}" if self.total else f"{n:,}"
        rate = f", {n / seconds:,.1f}/s" if seconds > 0 else ""
        share = "" if self.total is None or done else f" ({100 * n / max(self.total, 1):.0f}%)"
        log.info("%s: %s%s%s in %.0fs%s%s", self.desc, "done, " if done else "", count, share, seconds, rate,
                 f" [{self.postfix}]" if self.postfix else "")


def progress(iterable: Iterable[T], desc: str, *, total: int | None = None, enabled: bool = True,
             every_s: float = EVERY_S) -> Iterable[T]:
    """``iterable`` with its progress shown: a bar on a terminal, plain log lines elsewhere,
    nothing when ``enabled`` is false. The result has ``set_postfix`` unless disabled."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if not enabled:
        return tqdm(iterable, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, desc=desc, total=total, leave=False)
    return Lines(iterable, desc, total, every_s)
