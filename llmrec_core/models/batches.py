"""Training segments and padded tensors for the sequence model.

A user's time-ordered behaviours are cut into segments of at most ``max_len`` inputs, newest
first. In a segment over behaviours ``a..b`` the output at position ``k`` (profile plus
behaviours ``a..a+k-1``) predicts behaviour ``a+k``; position 0 (profile only) predicts only
when the segment starts at the user's first behaviour, so the profile path learns cold users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from llmrec_core.data.interactions import Interactions
from llmrec_core.models.two_tower import gap_bucket


@dataclass
class Segments:
    user: np.ndarray  # int64 user index per segment
    start: np.ndarray  # int64 global row of the first input behaviour
    stop: np.ndarray  # int64 global row of the last target (inclusive)

    def __len__(self) -> int:
        return len(self.user)


def make_segments(events: Interactions, n_users: int, max_len: int) -> Segments:
    indptr = events.indptr(n_users)
    users, starts, stops = [], [], []
    for u in np.flatnonzero(np.diff(indptr) > 0):
        lo, hi = int(indptr[u]), int(indptr[u + 1]) - 1
        b = hi
        while True:
            a = max(lo, b - max_len)
            users.append(u)
            starts.append(a)
            stops.append(b)
            if a == lo:
                break
            b = a
    return Segments(np.array(users, np.int64), np.array(starts, np.int64), np.array(stops, np.int64))


@dataclass
class SeqBatch:
    """Right-padded behaviours of B users: positions 0..L of the user tower."""

    users: torch.Tensor  # [B]
    items: torch.Tensor  # [B, L] item index of each input behaviour (0 where padded)
    kinds: torch.Tensor  # [B, L] behaviour kind (0 = padding)
    gaps: torch.Tensor  # [B, L] gap bucket to the previous behaviour
    lengths: torch.Tensor  # [B] number of input behaviours


def _pack(users, rows_per_user: list[np.ndarray], events: Interactions, max_len: int) -> SeqBatch:
    B = len(rows_per_user)
    L = max(1, max((len(r) for r in rows_per_user), default=1))
    items = np.zeros((B, L), np.int64)
    kinds = np.zeros((B, L), np.int64)
    gaps = np.zeros((B, L), np.int64)
    for b, rows in enumerate(rows_per_user):
        n = len(rows)
        if not n:
            continue
        items[b, :n] = events.item[rows]
        kinds[b, :n] = events.kind[rows]
        ts = events.ts[rows]
        gaps[b, 1:n] = gap_bucket(np.diff(ts))
    lengths = np.array([len(r) for r in rows_per_user], np.int64)
    t = torch.from_numpy
    return SeqBatch(torch.as_tensor(np.asarray(users), dtype=torch.long), t(items), t(kinds), t(gaps), t(lengths))


@dataclass
class TrainBatch:
    seq: SeqBatch
    target_pos: torch.Tensor  # [T] (row, position) pairs flattened: row index
    target_col: torch.Tensor  # [T] position within the row
    target_item: torch.Tensor  # [T]
    target_label: torch.Tensor  # [T] feedback label: 1 positive, 0 explicit negative, -1 no BCE
    elapsed: torch.Tensor  # [T] gap bucket from the last seen behaviour to the target
    softmax: torch.Tensor  # [T] bool: the target is a positive for the softmax


def train_batch(seg: Segments, idx: np.ndarray, events: Interactions, all_targets: bool, max_len: int) -> TrainBatch:
    """Segments ``idx`` as a batch. ``all_targets``: every next behaviour is a positive (the
    RecBole setting); otherwise positives by label and explicit negatives for BCE only."""
    rows_per_user, t_row, t_col, t_rows = [], [], [], []
    for b, s in enumerate(idx):
        a, stop = int(seg.start[s]), int(seg.stop[s])
        rows_per_user.append(np.arange(a, stop))
        first = events.user[a - 1] != events.user[a] if a > 0 else True
        for k in range(0 if first else 1, stop - a + 1):
            t_row.append(b)
            t_col.append(k)
            t_rows.append(a + k)
    seq = _pack(seg.user[idx], rows_per_user, events, max_len)
    t_rows = np.array(t_rows, np.int64)
    t_col = np.array(t_col, np.int64)
    prev = t_rows - 1
    elapsed = np.where(t_col > 0, gap_bucket(events.ts[t_rows] - events.ts[np.maximum(prev, 0)]), 0)
    label = events.label[t_rows]
    softmax = np.ones(len(t_rows), bool) if all_targets else label == 1
    keep = softmax | (label >= 0)
    t = torch.from_numpy
    return TrainBatch(
        seq, t(np.array(t_row, np.int64)[keep]), t(t_col[keep]), t(events.item[t_rows][keep].astype(np.int64)),
        t(label[keep].astype(np.int64)), t(elapsed[keep].astype(np.int64)), t(softmax[keep]),
    )


def history_batch(users: np.ndarray, starts: np.ndarray, stops: np.ndarray, events: Interactions, max_len: int) -> SeqBatch:
    """The last ``max_len`` behaviours of each user in ``[starts, stops)`` for prediction."""
    rows = [np.arange(max(int(a), int(b) - max_len), int(b)) for a, b in zip(starts, stops, strict=True)]
    return _pack(users, rows, events, max_len)
