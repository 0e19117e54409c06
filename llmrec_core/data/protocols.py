"""Evaluation protocols (docs/evaluation.md) as pure functions of the interactions.

Each returns an :class:`EvalSplit`: what models fit on (``train``), what they see about each
evaluated user at prediction time (``history``, time-ordered), when the prediction is made
(``asof``) and what counts as a hit (``truth``). Already-seen items are the user's
``history`` items; the harness excludes them from every ranking.

- ``loo``: leave-last-out. Every interaction counts; per user, in time order, the last item is
  the test target and the second-to-last the validation target; the user's history is excluded
  from the ranking (RecBole 1.2.1 does not exclude it for sequential models, so its figures
  are not comparable with these).
- ``temporal``: train on ts < cutoff; truth = the positives of [cutoff, cutoff + window) on
  items the user had not seen before the cutoff.
- ``cold_items``: items with no interaction before the cutoff and positives in the window.
  User side: each user's window positives among them, ranked against the cold items only
  (which new item will they like?). Item side: each cold item's users, ranking every user.
- ``ctr``: labelled positives and explicit negatives of the window, scored as p(click).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmrec_core.data.interactions import Interactions

DAY = 86_400


@dataclass
class EvalSplit:
    name: str
    train: Interactions
    history: Interactions
    users: np.ndarray  # evaluated user indices
    asof: np.ndarray  # int64 prediction time per evaluated user
    truth: list[np.ndarray]  # relevant item indices per evaluated user
    # cold_items: the items evaluated item-side, and their future users.
    items: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    item_truth: list[np.ndarray] = field(default_factory=list)
    # ctr: labelled pairs.
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    info: dict[str, int] = field(default_factory=dict)


def loo(events: Interactions, n_users: int, min_events: int = 3) -> tuple[EvalSplit, EvalSplit]:
    """Leave-last-out: (validation split, test split). Users with fewer events only train."""
    indptr = events.indptr(n_users)
    counts = np.diff(indptr)
    users = np.flatnonzero(counts >= min_events).astype(np.int32)
    last = indptr[users + 1] - 1
    second = last - 1
    held = np.zeros(len(events), bool)
    held[last] = True
    train = events.mask(~held & ~np.isin(np.arange(len(events)), second))
    upto_valid = events.mask(~held)
    # Predictions are made right after the last known behaviour: the held-out event's own time
    # would tell a time-aware model when the next behaviour happens.
    valid = EvalSplit(
        "loo_valid", train, train, users, events.ts[second - 1], [events.item[[i]] for i in second],
        info={"users": len(users)},
    )
    test = EvalSplit(
        "loo", train, upto_valid, users, events.ts[second], [events.item[[i]] for i in last],
        info={"users": len(users)},
    )
    return valid, test


def _window_positives(events: Interactions, cutoff: int, window_days: int) -> Interactions:
    in_window = (events.ts >= cutoff) & (events.ts < cutoff + window_days * DAY)
    return events.mask(in_window & (events.label == 1))


def temporal(events: Interactions, n_users: int, cutoff: int, window_days: int) -> EvalSplit:
    train = events.mask(events.ts < cutoff)
    future = _window_positives(events, cutoff, window_days)
    seen = set(zip(train.user.tolist(), train.item.tolist(), strict=True))
    truth: dict[int, set[int]] = {}
    for u, i in zip(future.user.tolist(), future.item.tolist(), strict=True):
        if (u, i) not in seen:
            truth.setdefault(u, set()).add(i)
    users = np.array(sorted(truth), dtype=np.int32)
    warm = np.bincount(train.user, minlength=n_users)[users] > 0 if len(users) else np.zeros(0, bool)
    return EvalSplit(
        "temporal", train, train, users, np.full(len(users), cutoff, np.int64),
        [np.array(sorted(truth[u]), np.int32) for u in users],
        info={"users": len(users), "warm_users": int(warm.sum()), "cold_users": int((~warm).sum())},
    )


def _grouped(keys: np.ndarray, values: np.ndarray, n: int) -> list[np.ndarray]:
    """For each key in ``range(n)``, the sorted distinct ``values`` paired with it (int32): one
    sort of the pairs, not a scan of them per key (the training job cuts every user's truth)."""
    pairs = np.unique(keys.astype(np.int64) << 32 | values.astype(np.int64))
    vals = (pairs & 0xFFFFFFFF).astype(np.int32)
    bounds = np.searchsorted(pairs >> 32, np.arange(n + 1))
    return [vals[bounds[k] : bounds[k + 1]] for k in range(n)]


def cold_items(events: Interactions, n_users: int, n_items: int, cutoff: int, window_days: int) -> EvalSplit:
    train = events.mask(events.ts < cutoff)
    seen_before = np.bincount(train.item, minlength=n_items) > 0
    future = _window_positives(events, cutoff, window_days)
    future = future.mask(~seen_before[future.item])
    items = np.unique(future.item).astype(np.int32)
    item_truth = _grouped(np.searchsorted(items, future.item), future.user, len(items))
    user_truth = _grouped(future.user, future.item, n_users)
    everyone = np.arange(n_users, dtype=np.int32)
    return EvalSplit(
        "cold_items", train, train, everyone, np.full(n_users, cutoff, np.int64), user_truth,
        items=items, item_truth=item_truth,
        info={"items": len(items), "users": sum(len(t) > 0 for t in user_truth), "pairs": len(future)},
    )


def ctr(events: Interactions, n_users: int, cutoff: int, window_days: int) -> EvalSplit:
    train = events.mask(events.ts < cutoff)
    window = (events.ts >= cutoff) & (events.ts < cutoff + window_days * DAY) & (events.label >= 0)
    labelled = events.mask(window)
    users = np.unique(labelled.user).astype(np.int32)
    return EvalSplit(
        "ctr", train, train, users, np.full(len(users), cutoff, np.int64), [],
        pairs=(labelled.user, labelled.item, labelled.label.astype(np.int8)),
        info={"pairs": len(labelled), "positives": int((labelled.label == 1).sum())},
    )
