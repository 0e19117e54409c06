"""Reconcile what a cleaning run read against what it wrote, per source and partition.

``read`` is counted on the parsed lines (a plain projection of the raw file lines, before any
check, dedupe or filter); clean, quarantined and duplicates are counted on what the split produces,
so ``read = clean + quarantined + duplicates`` checks that no line was lost or double counted.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

from llmrec_core.errors import LlmrecError

BOT_REASON = "bot_user"


def over_threshold(read: int, invalid: int, max_bad_share: float) -> bool:
    """Whether a partition's share of invalid rows fails it."""
    return read > 0 and invalid / read > max_bad_share


@dataclass
class PartitionSummary:
    source: str
    ds: dt.date
    read: int = 0
    clean: int = 0
    quarantined: int = 0
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    max_bad_share: float = 0.0

    @property
    def invalid(self) -> int:
        """Quarantined for being malformed; bot rows are well-formed and do not count."""
        return self.quarantined - self.reasons.get(BOT_REASON, 0)

    @property
    def bad_share(self) -> float:
        return self.invalid / self.read if self.read else 0.0

    @property
    def reconciled(self) -> bool:
        return self.read == self.clean + self.quarantined + self.duplicates

    @property
    def passed(self) -> bool:
        return not over_threshold(self.read, self.invalid, self.max_bad_share)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(ds=self.ds.isoformat(), invalid=self.invalid, bad_share=round(self.bad_share, 6),
                   reconciled=self.reconciled, passed=self.passed)
        return out

    def line(self) -> str:
        top = ", ".join(f"{k}={v}" for k, v in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:4])
        return (f"{self.source:6s} ds={self.ds} read={self.read} clean={self.clean} "
                f"quarantined={self.quarantined} duplicates={self.duplicates}" + (f" ({top})" if top else ""))


def summarize(
    source: str,
    days: list[dt.date],
    read_counts: dict[dt.date, int],
    status_counts: list[tuple[dt.date, str, str | None, int]],
    max_bad_share: float,
) -> list[PartitionSummary]:
    """One summary per day of ``days`` (zeros for an empty partition); raises if any day does
    not reconcile or rows turn up for a day outside ``days``."""
    by_day = {d: PartitionSummary(source, d, max_bad_share=max_bad_share) for d in days}
    reasons: dict[dt.date, Counter] = defaultdict(Counter)

    def get(ds: dt.date) -> PartitionSummary:
        return by_day.setdefault(ds, PartitionSummary(source, ds, max_bad_share=max_bad_share))

    for ds, n in read_counts.items():
        get(ds).read = n
    for ds, status, reason, n in status_counts:
        s = get(ds)
        if status == "clean":
            s.clean += n
        elif status == "duplicate":
            s.duplicates += n
        elif status == "quarantined":
            s.quarantined += n
            reasons[ds][reason] += n
        else:
            raise LlmrecError(f"unknown row status {status!r}")
    for ds, counter in reasons.items():
        by_day[ds].reasons = dict(counter)
    out = [by_day[d] for d in sorted(by_day)]
    unexpected = [s.ds for s in out if s.ds not in set(days)]
    broken = [s for s in out if not s.reconciled]
    if unexpected or broken:
        detail = "; ".join(s.line() for s in broken) or f"rows for days outside the run: {unexpected}"
        raise LlmrecError(f"{source}: counts do not reconcile: {detail}")
    return out


def total(summaries: list[PartitionSummary]) -> PartitionSummary:
    """Sum of several partitions' summaries (dated on the last one)."""
    if not summaries:
        return PartitionSummary("-", dt.date.min)
    out = PartitionSummary(summaries[0].source, summaries[-1].ds, max_bad_share=summaries[0].max_bad_share)
    reasons: Counter = Counter()
    for s in summaries:
        out.read += s.read
        out.clean += s.clean
        out.quarantined += s.quarantined
        out.duplicates += s.duplicates
        reasons.update(s.reasons)
    out.reasons = dict(reasons)
    return out
