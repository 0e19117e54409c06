"""Blocked top-K equals the naive full ranking, whatever the block sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec_core.topk import blocked_topk, joint_topk, topk_of_scores


def _naive(u, v, k, seen, allowed):
    s = u @ v.T
    s[:, ~allowed] = -np.inf
    for r, items in enumerate(seen):
        s[r, items] = -np.inf
    out_s, out_i = [], []
    for row in s:
        order = sorted((i for i in range(len(row)) if np.isfinite(row[i])), key=lambda i: (-row[i], i))[:k]
        out_i.append(order + [-1] * (k - len(order)))
        out_s.append([row[i] for i in order] + [-np.inf] * (k - len(order)))
    return np.array(out_s, np.float32), np.array(out_i)


@pytest.mark.parametrize("user_block,item_block", [(4096, 65536), (3, 7), (1, 1)])
def test_blocked_topk_matches_naive(user_block, item_block):
    rng = np.random.default_rng(0)
    u = rng.normal(size=(11, 4)).astype(np.float32)
    v = np.round(rng.normal(size=(23, 4)), 1).astype(np.float32)
    v[5] = v[6]  # a tie: the lower index must win
    seen = [rng.choice(23, size=rng.integers(0, 6), replace=False) for _ in range(11)]
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in seen])])
    allowed = np.ones(23, bool)
    allowed[[2, 17]] = False
    scores, items = blocked_topk(torch.from_numpy(u), torch.from_numpy(v), 5, exclude=(indptr, np.concatenate(seen)),
                                 allowed=allowed, user_block=user_block, item_block=item_block)
    exp_s, exp_i = _naive(u, v, 5, seen, allowed)
    assert np.array_equal(items, exp_i)
    assert np.allclose(scores, exp_s, atol=1e-5)


@pytest.mark.parametrize("row_block,col_block", [(4096, 65536), (3, 7)])
def test_joint_topk_ranks_by_prior_times_click_as_the_full_matrix_does(row_block, col_block):
    rng = np.random.default_rng(1)
    rows, cols = rng.normal(size=(9, 4)).astype(np.float32), rng.normal(size=(31, 4)).astype(np.float32)
    prior = np.log(rng.choice([0.05, 0.2, 0.6], size=31))  # a few values, as return rates per bucket are
    seen = [rng.choice(31, size=rng.integers(0, 8), replace=False) for _ in range(9)]
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in seen])])
    allowed = np.ones(31, bool)
    allowed[[0, 12, 30]] = False
    scores, picked = joint_topk(torch.from_numpy(rows), torch.from_numpy(cols), prior, 6, exclude=(indptr, np.concatenate(seen)),
                                allowed=allowed, scale=2.0, bias=0.5, row_block=row_block, col_block=col_block)
    full = prior[None, :] - np.logaddexp(0, -(rows.astype(np.float64) @ cols.T.astype(np.float64) * 2.0 + 0.5))
    want_s, want = topk_of_scores(full, 6, exclude=(indptr, np.concatenate(seen)), allowed=allowed)
    assert np.array_equal(picked, want)
    assert np.allclose(scores, want_s, atol=1e-5)
    # The prior decides between users the click model finds alike: with a flat prior, the click order.
    flat_s, flat = joint_topk(torch.from_numpy(rows), torch.from_numpy(cols), np.zeros(31), 6)
    assert np.array_equal(flat, blocked_topk(torch.from_numpy(rows), torch.from_numpy(cols), 6, scale=1.0)[1])
    assert not np.array_equal(flat, joint_topk(torch.from_numpy(rows), torch.from_numpy(cols), prior, 6)[1])
    # Fewer candidates than k pad with (-inf, -1).
    few_s, few = joint_topk(torch.from_numpy(rows), torch.from_numpy(cols), prior, 6, allowed=np.arange(31) < 4)
    assert (few[:, 4:] == -1).all() and np.isneginf(few_s[:, 4:]).all() and (few[:, :4] >= 0).all()


def test_fewer_candidates_than_k_pad_with_minus_one():
    u, v = torch.ones(2, 2), torch.eye(3, 2)
    allowed = np.array([True, False, False])
    scores, items = blocked_topk(u, v, 3, allowed=allowed, scale=2.0, bias=1.0)
    assert items.tolist() == [[0, -1, -1], [0, -1, -1]]
    assert scores[0, 0] == pytest.approx(3.0) and np.isneginf(scores[:, 1:]).all()


@pytest.mark.parametrize("item_block", [64, 7])
def test_ties_beyond_the_topk_margin_go_to_the_lower_index(item_block):
    u = torch.ones(3, 2)
    v = torch.ones(40, 2)
    v[30] = 2.0  # the one clear winner; the other 39 tie
    exclude = (np.array([0, 0, 2, 2]), np.array([0, 1]))  # user 1 has seen items 0 and 1
    scores, items = blocked_topk(u, v, 4, exclude=exclude, item_block=item_block)
    assert items.tolist() == [[30, 0, 1, 2], [30, 2, 3, 4], [30, 0, 1, 2]]
    assert scores[0].tolist() == [4.0, 2.0, 2.0, 2.0]


NEG = -np.inf


def lists(scores: np.ndarray, k: int) -> list[np.ndarray]:
    """topk_of_scores' items per row, padding dropped."""
    return [row[row >= 0] for row in topk_of_scores(scores, k)[1]]


def test_top_k_skips_unscorable_and_breaks_ties_by_index():
    scores = np.array([[0.3, NEG, 0.9, 0.3, NEG], [NEG] * 5, [0.1, 0.2, 0.3, 0.4, 0.5]], dtype=np.float32)
    assert [r.tolist() for r in lists(scores, 4)] == [[2, 0, 3], [], [4, 3, 2, 1]]
    assert [r.tolist() for r in lists(scores, 10)] == [[2, 0, 3], [], [4, 3, 2, 1, 0]]
    assert [r.tolist() for r in lists(scores, 1)] == [[2], [], [4]]


def test_top_k_ties_at_the_cut_go_to_the_lowest_columns():
    scores = np.array([[1.0] * 29 + [2.0], [0.0, 2.0, 1.0, 2.0, 1.0, 1.0, 0.0, 1.0, 2.0, 1.0] * 3], np.float32)
    assert [r.tolist() for r in lists(scores, 3)] == [[29, 0, 1], [1, 3, 8]]
    assert [r.tolist() for r in lists(scores, 8)] == [[29, 0, 1, 2, 3, 4, 5, 6], [1, 3, 8, 11, 13, 18, 21, 23]]
    assert [r.tolist() for r in lists(scores, 11)][1] == [1, 3, 8, 11, 13, 18, 21, 23, 28, 2, 4]
