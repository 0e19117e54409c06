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


def _exclusion_mask(indptr: np.ndarray, indices: np.ndarray, users: np.ndarray, lo: int, hi: int,
                    device: torch.device) -> torch.Tensor | None:
    """(rows, cols) inside the item block [lo, hi) that must not be recommended."""
    rows, cols = [], []
    for r, u in enumerate(users):
        seen = indices[indptr[u]:indptr[u + 1]]
        seen = seen[(seen >= lo) & (seen < hi)]
        rows.append(np.full(len(seen), r))
        cols.append(seen - lo)
    if not rows or not sum(len(c) for c in cols):
        return None
    return torch.from_numpy(np.concatenate(rows)).to(device), torch.from_numpy(np.concatenate(cols)).to(device)


def _top(scores: torch.Tensor, items: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best k per row by (score desc, item asc)."""
    order = torch.argsort(items, dim=1, stable=True)
    scores, items = scores.gather(1, order), items.gather(1, order)
    best = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
    return scores.gather(1, best), items.gather(1, best)


@torch.no_grad()
def blocked_topk(user_vecs: torch.Tensor, item_vecs: torch.Tensor, k: int, *, exclude: tuple[np.ndarray, np.ndarray] | None = None,
                 allowed: np.ndarray | None = None, scale: float = 1.0, bias: float = 0.0,
                 user_block: int = 4096, item_block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items per user: (scores [U, k] float32, items [U, k] int64).

    ``exclude`` is CSR ``(indptr, indices)`` over users (e.g. already-seen items); ``allowed`` a
    boolean mask over items. Rows with fewer than k candidates end in (-inf, -1).
    """
    n_users, n_items = user_vecs.shape[0], item_vecs.shape[0]
    device = user_vecs.device
    out_s = np.full((n_users, k), -np.inf, np.float32)
    out_i = np.full((n_users, k), -1, np.int64)
    allowed_t = torch.from_numpy(allowed).to(device) if allowed is not None else None
    for u0 in range(0, n_users, user_block):
        users = np.arange(u0, min(n_users, u0 + user_block))
        best_s = torch.full((len(users), 0), -torch.inf, device=device)
        best_i = torch.zeros((len(users), 0), dtype=torch.long, device=device)
        for lo in range(0, n_items, item_block):
            hi = min(n_items, lo + item_block)
            s = (user_vecs[users[0]:users[-1] + 1] @ item_vecs[lo:hi].T).float() * scale + bias
            if allowed_t is not None:
                s[:, ~allowed_t[lo:hi]] = -torch.inf
            if exclude is not None:
                mask = _exclusion_mask(exclude[0], exclude[1], users, lo, hi, device)
                if mask is not None:
                    s[mask] = -torch.inf
            cols = torch.arange(lo, hi, device=device).expand(len(users), -1)
            block_s, block_i = _top(s, cols, min(k, hi - lo))
            best_s, best_i = _top(torch.cat([best_s, block_s], 1), torch.cat([best_i, block_i], 1), k)
        s_np, i_np = best_s.cpu().numpy(), best_i.cpu().numpy()
        i_np = np.where(np.isfinite(s_np), i_np, -1)
        out_s[u0:u0 + len(users), : s_np.shape[1]] = s_np
        out_i[u0:u0 + len(users), : i_np.shape[1]] = i_np
    return out_s, out_i
