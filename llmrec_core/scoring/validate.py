"""Checks a day's serving tables must pass before they are published.

Each check recomputes its expectation from the snapshot, not from the scorer, and reports how
many rows (or users, items) fail it. The job publishes nothing when any check fails.
Tables here hold indices (``user``, ``item``, ``rec_item``), as the engines return them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from llmrec_core.errors import LlmrecError
from llmrec_core.io.serving_schema import SOURCES


@dataclass(frozen=True)
class Failure:
    table: str
    check: str
    count: int
    what: str = "rows"

    def __str__(self) -> str:
        return f"{self.table}: {self.check} failed for {self.count:,} {self.what}"


class ValidationError(LlmrecError):
    def __init__(self, failures: list[Failure]):
        self.failures = failures
        super().__init__("validation failed, nothing published (the previous day stays current): "
                         + "; ".join(str(f) for f in failures))


def _pairs(a: np.ndarray, b: np.ndarray, width: int) -> np.ndarray:
    return a.astype(np.int64) * width + b.astype(np.int64)


def _ranked(table: str, key: np.ndarray, other: np.ndarray, rank: np.ndarray, score: np.ndarray, width: int) -> list[Failure]:
    """Shared checks of a (key, rank, other, score) table sorted by (key, rank)."""
    out = []
    pair = _pairs(key, other, width)
    if (n := len(pair) - len(np.unique(pair))) > 0:
        out.append(Failure(table, "no duplicate pairs", n))
    if (n := len(key) - len(np.unique(_pairs(key, rank, 1 << 31)))) > 0:
        out.append(Failure(table, "no duplicate ranks", n))
    if (n := int((~np.isfinite(score)).sum())) > 0:
        out.append(Failure(table, "finite scores", n))
    same = key[1:] == key[:-1]
    if (n := int((same & (rank[1:] != rank[:-1] + 1)).sum() + (~same & (rank[1:] != 1)).sum() + (len(rank) and rank[0] != 1))) > 0:
        out.append(Failure(table, "ranks 1..n in order", n))
    if (n := int((same & (score[1:] > score[:-1])).sum())) > 0:
        out.append(Failure(table, "scores descending by rank", n))
    return out


def _short(expected: np.ndarray, got: np.ndarray) -> int:
    return int((got < expected).sum())


def user_row_failures(recs: pa.Table, *, seen: tuple[np.ndarray, np.ndarray], allowed: np.ndarray, k: int,
                      users: np.ndarray | None = None) -> tuple[list[Failure], np.ndarray]:
    """The checks of the user rows (and the (user, item) pairs already seen, as ``user * n_items +
    item``). ``users``: the users that must have rows (default: every user of ``seen``); no other
    user may have any."""
    n_users, n_items = len(seen[0]) - 1, len(allowed)
    user, item, rank = (recs[c].to_numpy() for c in ("user", "item", "rank"))
    score = recs["score"].to_numpy()
    fails = _ranked("user_recommendations", user, item, rank, score, n_items)
    seen_user = np.repeat(np.arange(n_users), np.diff(seen[0]))
    seen_pairs = np.unique(_pairs(seen_user, seen[1], n_items))
    if (n := int(np.isin(_pairs(user, item, n_items), seen_pairs).sum())) > 0:
        fails.append(Failure("user_recommendations", "no already-seen items", n))
    if (n := int((~allowed[item]).sum())) > 0:
        fails.append(Failure("user_recommendations", "only available items passing the filters", n))
    # K rows for every known user, or all there is when fewer items are left to recommend.
    seen_allowed = np.bincount(seen_pairs // n_items, weights=allowed[seen_pairs % n_items], minlength=n_users)
    expected = np.minimum(k, int(allowed.sum()) - seen_allowed.astype(np.int64))
    if users is not None:
        wanted = np.zeros(n_users, bool)
        wanted[users] = True
        expected = np.where(wanted, expected, 0)
        if (n := int((~wanted[user]).sum())) > 0:
            fails.append(Failure("user_recommendations", "rows only for the users asked for", n))
    if (n := _short(expected, np.bincount(user, minlength=n_users))) > 0:
        fails.append(Failure("user_recommendations", f"{k} rows per known user", n, "users"))
    reasons = recs["reason"].to_pylist()
    if (n := sum(1 for r in reasons if not r)) > 0:
        fails.append(Failure("user_recommendations", "a reason on every row", n))
    if (n := int((~np.isin(recs["source"].to_numpy(zero_copy_only=False), SOURCES)).sum())) > 0:
        fails.append(Failure("user_recommendations", "known source", n))
    return fails, seen_pairs


def validate(recs: pa.Table, similar: pa.Table, audience: pa.Table, *, seen: tuple[np.ndarray, np.ndarray], allowed: np.ndarray,
             k: int, similar_k: int, previous: dict[str, int], tolerance: float) -> list[Failure]:
    """Every failed check; an empty list means the tables may be published.

    ``seen`` is the CSR (indptr over users, item indices) of what each user already engaged
    with; ``allowed`` the items that may be recommended (available and passing the filters).
    """
    n_users, n_items = len(seen[0]) - 1, len(allowed)
    fails, seen_pairs = user_row_failures(recs, seen=seen, allowed=allowed, k=k)

    s_item, s_rec, s_rank = (similar[c].to_numpy() for c in ("item", "rec_item", "rank"))
    fails += _ranked("item_recommendations", s_item, s_rec, s_rank, similar["score"].to_numpy(), n_items)
    if (n := int((s_item == s_rec).sum() + (~allowed[s_rec]).sum())) > 0:
        fails.append(Failure("item_recommendations", "only other available items passing the filters", n))
    expected = np.minimum(similar_k, int(allowed.sum()) - allowed.astype(np.int64))
    if (n := _short(expected, np.bincount(s_item, minlength=n_items))) > 0:
        fails.append(Failure("item_recommendations", "similar items for every catalogue item", n, "items"))

    a_item, a_user, a_rank = (audience[c].to_numpy() for c in ("item", "user", "rank"))
    fails += _ranked("item_audience", a_item, a_user, a_rank, audience["score"].to_numpy(), n_users)
    if (n := int(np.isin(_pairs(a_user, a_item, n_items), seen_pairs).sum())) > 0:
        fails.append(Failure("item_audience", "no users who already engaged", n))

    for table, rows in (("user_recommendations", len(recs)), ("item_recommendations", len(similar)), ("item_audience", len(audience))):
        before = previous.get(table, 0)
        if before and abs(rows - before) > tolerance * before:
            fails.append(Failure(table, f"row count within {tolerance:.0%} of the previous day's {before:,}", abs(rows - before)))
    return fails
