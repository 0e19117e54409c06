"""The one exact top-K of llmrec: memory bounded by the block sizes, never by users x items.

Every ranked list in llmrec comes from here: the evaluation harness, the nightly scoring job,
the re-ranker and the similar items. For each block of users and each block of items the
scores are computed (one matrix multiply in :func:`blocked_topk`, a slice of a score matrix in
:func:`topk_of_scores`; :func:`joint_topk` runs :func:`blocked_topk` per group of columns and
merges); excluded (user, item) pairs and items that are not allowed are set to -inf; the
running top-K of each user is merged with the block's top-K. Ties go to the lower item index,
so every path (CPU, GPU, Spark partitions) returns the same rows.

Exclusions are CSR ``(indptr, indices)`` over the rows being ranked; ``allowed`` a boolean mask
over the columns. Rows with fewer than k candidates end in (-inf, -1).
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


def sort_top(scores: torch.Tensor, items: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
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
        return sort_top(s, cols.expand(len(s), -1), k)
    vals, idx = torch.topk(s, take, dim=1)
    out_s, out_i = sort_top(vals, idx + lo, k)
    edge = vals[:, k - 1]
    ambiguous = torch.nonzero((vals[:, -1] == edge) & torch.isfinite(edge)).flatten()
    if len(ambiguous):
        full_s, full_i = sort_top(s[ambiguous], cols.expand(len(ambiguous), -1), k)
        out_s[ambiguous], out_i[ambiguous] = full_s, full_i
    return out_s, out_i


def _accumulate(block_scores, n_rows: int, n_cols: int, k: int, *, exclude: tuple[np.ndarray, np.ndarray] | None,
                allowed: np.ndarray | None, scale: float, bias: float, row_block: int, col_block: int,
                device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns per row over blocks; ``block_scores(r0, r1, lo, hi)`` gives one block as a
    tensor that may be modified in place."""
    if scale <= 0:
        raise ValueError(f"scale must be positive (it must not change the order), not {scale}")
    out_s = np.full((n_rows, k), -np.inf, np.float32)
    out_i = np.full((n_rows, k), -1, np.int64)
    blocked = None if allowed is None or allowed.all() else torch.from_numpy(~np.asarray(allowed, bool)).to(device)
    for u0 in range(0, n_rows, row_block):
        u1 = min(n_rows, u0 + row_block)
        best_s = torch.full((u1 - u0, 0), -torch.inf, device=device)
        best_i = torch.zeros((u1 - u0, 0), dtype=torch.long, device=device)
        for lo in range(0, n_cols, col_block):
            hi = min(n_cols, lo + col_block)
            s = block_scores(u0, u1, lo, hi)
            if blocked is not None:
                s.masked_fill_(blocked[lo:hi], -torch.inf)
            if exclude is not None:
                mask = _exclusion_mask(exclude[0], exclude[1], u0, u1, lo, hi, device)
                if mask is not None:
                    s[mask] = -torch.inf
            block_s, block_i = _block_top(s, lo, min(k, hi - lo))
            best_s, best_i = sort_top(torch.cat([best_s, block_s.float()], 1), torch.cat([best_i, block_i], 1), k)
        # Scale and bias do not change the order: applied at the end.
        s_np, i_np = (best_s * scale + bias).cpu().numpy(), best_i.cpu().numpy()
        i_np = np.where(np.isfinite(s_np), i_np, -1)
        out_s[u0:u1, : s_np.shape[1]] = s_np
        out_i[u0:u1, : i_np.shape[1]] = i_np
    return out_s, out_i


@torch.no_grad()
def blocked_topk(user_vecs: torch.Tensor, item_vecs: torch.Tensor, k: int, *, exclude: tuple[np.ndarray, np.ndarray] | None = None,
                 allowed: np.ndarray | None = None, scale: float = 1.0, bias: float = 0.0,
                 user_block: int = 4096, item_block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items per user by ``<u, i> * scale + bias``: (scores [U, k] float32, items [U, k] int64)."""
    buffer: list[torch.Tensor] = []

    def block(u0: int, u1: int, lo: int, hi: int) -> torch.Tensor:
        # One reused buffer: allocating (and faulting in) a fresh block each time costs as
        # much as the multiply.
        if not buffer or buffer[0].shape != (u1 - u0, hi - lo):
            buffer[:] = [torch.empty((u1 - u0, hi - lo), dtype=user_vecs.dtype, device=user_vecs.device)]
        return torch.matmul(user_vecs[u0:u1], item_vecs[lo:hi].T, out=buffer[0])

    return _accumulate(block, user_vecs.shape[0], item_vecs.shape[0], k, exclude=exclude, allowed=allowed, scale=scale,
                       bias=bias, row_block=user_block, col_block=item_block, device=user_vecs.device)


@torch.no_grad()
def joint_topk(row_vecs: torch.Tensor, col_vecs: torch.Tensor, col_log_prior: np.ndarray, k: int, *,
               exclude: tuple[np.ndarray, np.ndarray] | None = None, allowed: np.ndarray | None = None,
               scale: float = 1.0, bias: float = 0.0, row_block: int = 4096,
               col_block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns per row by ``col_log_prior[c] + log sigmoid(<r, c> * scale + bias)``: the log
    of a probability that is the column's prior times a click probability (an item's audience:
    each user's return rate times p(click)), as (scores [R, k] float32, columns [R, k]).

    The prior takes a few values (one per bucket of return rates). Within the columns that share
    one, the order is the click logit's, so each group runs through :func:`blocked_topk` and the
    groups' k best are merged: the cost of one :func:`blocked_topk` over all columns, with no
    transcendental function over the whole matrix. Ties go to the higher click logit, then to
    the lower column."""
    prior = np.asarray(col_log_prior, np.float64)
    n_rows, n_cols = row_vecs.shape[0], col_vecs.shape[0]
    if not n_rows or not n_cols:
        return np.full((n_rows, k), -np.inf, np.float32), np.full((n_rows, k), -1, np.int64)
    found = []
    for value in np.unique(prior):
        cols = np.flatnonzero(prior == value)
        s, c = columns_topk(row_vecs, col_vecs[torch.from_numpy(cols).to(col_vecs.device)], cols, n_cols, k, exclude=exclude,
                            allowed=allowed, scale=scale, bias=bias, row_block=row_block, col_block=col_block)
        found.append((value + torch.nn.functional.logsigmoid(torch.from_numpy(s).double()).numpy(), c))
    return merge_top(found, k)


@torch.no_grad()
def columns_topk(row_vecs: torch.Tensor, col_vecs: torch.Tensor, cols: np.ndarray, n_cols: int, k: int, *,
                 exclude: tuple[np.ndarray, np.ndarray] | None = None, allowed: np.ndarray | None = None,
                 scale: float = 1.0, bias: float = 0.0, row_block: int = 4096,
                 col_block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """:func:`blocked_topk` over some of ``n_cols`` columns, ``cols``, whose vectors are
    ``col_vecs`` (in that order): ``exclude``, ``allowed`` and the columns returned are in the
    numbering of all columns; the cost is that of those columns alone."""
    cols = np.asarray(cols, np.int64)
    local = None
    if exclude is not None:  # the exclusions of these columns, in their own numbering
        position = np.full(n_cols, -1, np.int64)
        position[cols] = np.arange(len(cols))
        mapped = position[exclude[1]]
        kept = np.concatenate([[0], np.cumsum(mapped >= 0)])
        local = (kept[exclude[0]], mapped[mapped >= 0])
    s, c = blocked_topk(row_vecs, col_vecs, k, exclude=local,
                        allowed=None if allowed is None else np.asarray(allowed, bool)[cols], scale=scale, bias=bias,
                        user_block=row_block, item_block=col_block)
    return s, np.where(c >= 0, cols[np.maximum(c, 0)], -1)


def merge_top(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best k of several (scores, columns) top-K lists of the same rows, with the same ties
    (the higher score, then the lower column); -inf and -1 pad as everywhere."""
    scores = np.concatenate([s for s, _ in parts], 1)
    cols = np.concatenate([c for _, c in parts], 1)
    best_s, best_c = sort_top(torch.from_numpy(scores.astype(np.float64)), torch.from_numpy(cols), k)
    best_s, best_c = best_s.numpy(), best_c.numpy()
    found = np.isfinite(best_s)
    return np.where(found, best_s, -np.inf).astype(np.float32), np.where(found, best_c, -1)


@torch.no_grad()
def topk_of_scores(scores: np.ndarray, k: int, *, exclude: tuple[np.ndarray, np.ndarray] | None = None,
                   allowed: np.ndarray | None = None, row_block: int = 4096,
                   col_block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns per row of a score matrix (-inf = cannot score): the same selection as
    :func:`blocked_topk`, for recommenders that score users against items directly."""
    matrix = torch.from_numpy(np.ascontiguousarray(scores, np.float32))

    def block(u0: int, u1: int, lo: int, hi: int) -> torch.Tensor:
        return matrix[u0:u1, lo:hi].clone()

    return _accumulate(block, matrix.shape[0], matrix.shape[1], k, exclude=exclude, allowed=allowed, scale=1.0, bias=0.0,
                       row_block=row_block, col_block=col_block, device=matrix.device)


def csr_rows(csr: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CSR of some rows of a CSR, in the given order."""
    indptr, indices = csr
    rows = np.asarray(rows, np.int64)
    lengths = (indptr[rows + 1] - indptr[rows]).astype(np.int64)
    out = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    take = np.repeat(indptr[rows].astype(np.int64) - out[:-1], lengths) + np.arange(out[-1])
    return out, np.asarray(indices)[take]


def transpose_csr(csr: tuple[np.ndarray, np.ndarray], n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of columns: for each column, the rows that hold it (ascending)."""
    indptr, indices = csr
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    order = np.lexsort((rows, indices))
    by_col = np.concatenate([[0], np.cumsum(np.bincount(np.asarray(indices, np.int64), minlength=n_cols))]).astype(np.int64)
    return by_col, rows[order]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` with each row scaled to unit length (a zero row stays zero), so that their dot
    products are cosines."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
