"""Blocked top-K equals the naive full ranking, whatever the block sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec_core.topk import blocked_topk, columns_topk, csr_rows, joint_topk, merge_top, topk_of_scores


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


def test_columns_ranked_apart_and_merged_equal_one_ranking_of_them_all():
    """Two parts of the columns, each through ``columns_topk`` with its own vectors (the second
    part's rows and columns built differently), merged, are the top-K of the one score matrix
    that puts each part's scores in its columns; exclusions and allowed stay in the numbering
    of all columns, ties go to the lower column."""
    rng = np.random.default_rng(2)
    n_rows, n_cols, k = 10, 29, 6
    a_rows, a_cols = rng.normal(size=(n_rows, 4)).astype(np.float32), np.round(rng.normal(size=(n_cols, 4)), 1).astype(np.float32)
    b_rows, b_cols = rng.normal(size=(n_rows, 7)).astype(np.float32), np.round(rng.normal(size=(n_cols, 7)), 1).astype(np.float32)
    b_cols[[3, 12]] = b_cols[20]  # ties inside the second part
    part = np.zeros(n_cols, bool)
    part[[3, 5, 8, 12, 13, 20, 21, 28]] = True
    seen = [rng.choice(n_cols, size=rng.integers(0, 8), replace=False) for _ in range(n_rows)]
    exclude = (np.concatenate([[0], np.cumsum([len(s) for s in seen])]), np.concatenate(seen))
    allowed = np.ones(n_cols, bool)
    allowed[[5, 9]] = False
    full = np.where(part, b_rows @ b_cols.T, a_rows @ a_cols.T)
    want_s, want = topk_of_scores(full, k, exclude=exclude, allowed=allowed)
    lists = []
    for cols, R, C in ((np.flatnonzero(~part), a_rows, a_cols), (np.flatnonzero(part), b_rows, b_cols)):
        lists.append(columns_topk(torch.from_numpy(R), torch.from_numpy(C[cols]), cols, n_cols, k, exclude=exclude,
                                  allowed=allowed, row_block=3, col_block=4))
        assert np.isin(lists[-1][1][lists[-1][1] >= 0], cols).all()
    got_s, got = merge_top(lists, k)
    assert np.array_equal(got, want) and np.allclose(got_s, want_s, atol=1e-5)
    few = merge_top([columns_topk(torch.from_numpy(b_rows), torch.from_numpy(b_cols[[5, 9]]), np.array([5, 9]), n_cols, 3)], 3)
    assert (few[1][:, 2] == -1).all() and np.isneginf(few[0][:, 2]).all()  # two columns: padded


def test_csr_rows_takes_rows_in_the_order_asked():
    indptr, indices = np.array([0, 2, 2, 5]), np.array([7, 1, 4, 0, 9])
    out_ptr, out_idx = csr_rows((indptr, indices), np.array([2, 1, 0, 2]))
    assert out_ptr.tolist() == [0, 3, 3, 5, 8] and out_idx.tolist() == [4, 0, 9, 7, 1, 4, 0, 9]
    assert [a.tolist() for a in csr_rows((indptr, indices), np.array([], np.int64))] == [[0], []]


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
