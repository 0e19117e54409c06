"""Beyond-accuracy metrics (coverage, novelty, diversity, popularity, Gini) on hand-sized lists."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmrec_core.metrics import (
    catalogue_coverage,
    gini_exposure,
    intra_list_diversity,
    novelty,
    popularity_bias,
)


def test_catalogue_coverage():
    # distinct {a, b, c} out of 10
    assert catalogue_coverage([["a", "b"], ["b", "c"]], 10) == pytest.approx(0.3)
    assert catalogue_coverage([], 10) == 0.0
    with pytest.raises(ValueError):
        catalogue_coverage([["a"]], 0)


def test_novelty_with_cold_item():
    pop = {"a": 50, "b": 25, "c": 0}
    # a: -log2(50/100) = 1, b: -log2(25/100) = 2, c cold -> pop 1: -log2(1/100) = 6.6438561898
    # mean over all 4 recommendations: (1 + 2 + 1 + 6.6438561898) / 4
    assert novelty([["a", "b"], ["a", "c"]], pop, 100) == pytest.approx(2.6609640474)
    # an item absent from the mapping is cold too
    assert novelty([["a", "b"], ["a", "z"]], pop, 100) == pytest.approx(2.6609640474)


def test_novelty_no_recs_is_nan():
    assert math.isnan(novelty([], {"a": 1}, 10))
    assert math.isnan(novelty([[], []], {"a": 1}, 10))


E1, E2, E3 = np.eye(3)


def test_ild_orthogonal_and_identical():
    vectors = {"x": E1, "y": E2, "z": E3, "p": np.array([1.0, 1.0, 0.0]), "q": np.array([2.0, 2.0, 0.0])}
    assert intra_list_diversity([["x", "y", "z"]], vectors) == pytest.approx(1.0)  # all cos = 0
    assert intra_list_diversity([["p", "q"]], vectors) == pytest.approx(0.0)  # same direction
    # lists weigh equally: (1 + 0) / 2; the one-item list is skipped
    assert intra_list_diversity([["x", "y", "z"], ["p", "q"], ["x"]], vectors) == pytest.approx(0.5)


def test_ild_45_degrees():
    vectors = {"x": E1, "p": np.array([1.0, 1.0, 0.0])}
    # 1 - cos(45 deg) = 1 - 1/sqrt(2)
    assert intra_list_diversity([["x", "p"]], vectors) == pytest.approx(0.2928932188)


def test_ild_no_qualifying_list_is_nan():
    assert math.isnan(intra_list_diversity([["x"], []], {"x": E1}))


def test_popularity_bias_is_mean_of_list_means():
    pop = {"a": 10, "b": 2, "c": 4}
    # list means 6 and 4 -> 5; an item-weighted mean would be 16/3
    assert popularity_bias([["a", "b"], ["c"]], pop) == pytest.approx(5.0)
    assert math.isnan(popularity_bias([], pop))


def test_gini_uniform_is_zero():
    assert gini_exposure([["a", "b"], ["c", "d"]], 4) == pytest.approx(0.0)


def test_gini_all_on_one_item():
    # x = [0, 0, 0, 0, 3]: (2*5 - 5 - 1) * 3 / (5 * 3) = (n - 1) / n = 4/5
    assert gini_exposure([["a"], ["a"], ["a"]], 5) == pytest.approx(0.8)


def test_gini_hand_computed_with_unexposed_items():
    # exposures a:3, b:1 in a catalogue of 4 -> x = [0, 0, 1, 3], weights 2i - 5 = -3, -1, 1, 3
    # (1*1 + 3*3) / (4 * 4) = 10 / 16
    assert gini_exposure([["a", "b"], ["a"], ["a"]], 4) == pytest.approx(0.625)
    # x = [0, 0, 1, 1]: (1 + 3) / (4 * 2)
    assert gini_exposure([["a", "b"]], 4) == pytest.approx(0.5)


def test_gini_no_exposure_is_nan_and_oversized_raises():
    assert math.isnan(gini_exposure([[], []], 4))
    with pytest.raises(ValueError):
        gini_exposure([["a", "b", "c"]], 2)
