"""Exact top-K by blocked matrix multiply: memory bounded by the block sizes, never by
users x items.

For each block of users and each block of items the scores are one matrix multiply; excluded
(user, item) pairs and unavailable items are set to -inf; the running top-K of each user is
merged with the block's top-K. Ties go to the lower item index, so every path (CPU, GPU,
Spark partitions) returns the same rows.
"""

from __future__ import annotations

import numpy as np
import torch


def _exclusion_mask(indptr: np.ndarray, indices: np.ndarray, u0: int, u1: int, lo: int, hi: int,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(rows, cols) inside the block of users [u0, u1) and items [lo, hi) that must not be recommended."""
    cols = indices[indptr[u0]:indptr[u1]]
    rows = np.repeat(np.arange(u1 - u0), np.diff(indptr[u0:u1 + 1]))
    inside = (cols >= lo) & (cols < hi)
    if not inside.any():
        return None
    return torch.from_numpy(rows[inside]).to(device), torch.from_numpy(cols[inside].astype(np.int64) - lo).to(device)


def _top(scores: torch.Tensor, items: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best k per row by (score desc, item asc): an exact stable sort, for small candidate sets."""
    order = torch.argsort(items, dim=1, stable=True)
    scores, items = scores.gather(1, order), items.gather(1, order)
    best = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
    return scores.gather(1, best), items.gather(1, best)


def _block_top(s: torch.Tensor, lo: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best k columns of a score block (ties to the lower column), via ``torch.topk``.

    ``topk`` does not order ties, so it takes a few more than k and sorts those exactly; a row
    whose k-th finite score is still tied at the edge of that margin is sorted in full.
    """
    n = s.shape[1]
    cols = torch.arange(lo, lo + n, device=s.device)
    take = min(n, k + 8)
    if take == n:
        return _top(s, cols.expand(len(s), -1), k)
    vals, idx = torch.topk(s, take, dim=1)
    out_s, out_i = _top(vals, idx + lo, k)
    edge = vals[:, k - 1]
    ambiguous = torch.nonzero((vals[:, -1] == edge) & torch.isfinite(edge)).flatten()
    if len(ambiguous):
        full_s, full_i = _top(s[ambiguous], cols.expand(len(ambiguous), -1), k)
        out_s[ambiguous], out_i[ambiguous] = full_s, full_i
    return out_s, out_i


@torch.no_grad()
def blocked_topk(user_vecs: torch.Tensor, item_vecs: torch.Tensor, k: int, *, exclude: tuple[np.ndarray, np.ndarray] | None = None,
                 allowed: np.ndarray | None = None, scale: float = 1.0, bias: float = 0.0,
                 user_block: int = 4096, item_block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items per user: (scores [U, k] float32, items [U, k] int64).

    ``exclude`` is CSR ``(indptr, indices)`` over users (e.g. already-seen items); ``allowed`` a
    boolean mask over items. Rows with fewer than k candidates end in (-inf, -1).
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive (it must not change the order), not {scale}")
    n_users, n_items = user_vecs.shape[0], item_vecs.shape[0]
    device = user_vecs.device
    out_s = np.full((n_users, k), -np.inf, np.float32)
    out_i = np.full((n_users, k), -1, np.int64)
    blocked = None if allowed is None or allowed.all() else torch.from_numpy(~allowed).to(device)
    buffer = None
    for u0 in range(0, n_users, user_block):
        u1 = min(n_users, u0 + user_block)
        best_s = torch.full((u1 - u0, 0), -torch.inf, device=device)
        best_i = torch.zeros((u1 - u0, 0), dtype=torch.long, device=device)
        for lo in range(0, n_items, item_block):
            hi = min(n_items, lo + item_block)
            # One reused buffer: allocating (and faulting in) a fresh block each time costs as
            # much as the multiply. Scale and bias do not change the order: applied at the end.
            if buffer is None or buffer.shape != (u1 - u0, hi - lo):
                buffer = torch.empty((u1 - u0, hi - lo), dtype=user_vecs.dtype, device=device)
            s = torch.matmul(user_vecs[u0:u1], item_vecs[lo:hi].T, out=buffer)
            if blocked is not None:
                s.masked_fill_(blocked[lo:hi], -torch.inf)
            if exclude is not None:
                mask = _exclusion_mask(exclude[0], exclude[1], u0, u1, lo, hi, device)
                if mask is not None:
                    s[mask] = -torch.inf
            block_s, block_i = _block_top(s, lo, min(k, hi - lo))
            best_s, best_i = _top(torch.cat([best_s, block_s.float()], 1), torch.cat([best_i, block_i], 1), k)
        s_np, i_np = (best_s * scale + bias).cpu().numpy(), best_i.cpu().numpy()
        i_np = np.where(np.isfinite(s_np), i_np, -1)
        out_s[u0:u1, : s_np.shape[1]] = s_np
        out_i[u0:u1, : i_np.shape[1]] = i_np
    return out_s, out_i
