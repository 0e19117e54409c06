"""Baselines are tuned on validation: the best grid point by the metric, ties to the configured one."""

from __future__ import annotations

import numpy as np

from llmrec_core.data import protocols
from llmrec_core.data.snapshot import load_snapshot
from llmrec_core.evaluation import evaluate
from llmrec_core.recommenders import zoo
from llmrec_core.recommenders.classic import ItemKNN
from llmrec_core.tuning import tune


def test_the_best_grid_point_on_validation_wins(toy_home, tiny_settings):
    home, last = toy_home
    snap = load_snapshot(tiny_settings, last)
    cutoff = snap.end_ts - 5 * protocols.DAY
    valid = protocols.temporal(snap.events, snap.n_users, cutoff, 5)
    grid = [{"neighbours": n, "shrink": s} for n in (1, 5, 40) for s in (0.0, 20.0)]
    best, trials = tune(ItemKNN, grid, snap, valid.train, valid, [10], "ndcg_10")
    assert len(trials) == 6
    values = [evaluate(ItemKNN(**p).fit(snap, valid.train), valid, snap, [10])["ndcg_10"] for p in grid]
    assert [v for _, v in trials] == values
    assert best == grid[int(np.argmax(values))]  # argmax: the first of equal values


def test_grids_start_with_the_configured_values_and_can_be_switched_off(tiny_settings):
    ev = tiny_settings.evaluation
    grids = zoo.baseline_grids(tiny_settings)
    assert set(grids) == {"popularity", "item_knn", "ease", "als", "content"}
    assert grids["item_knn"][1][0] == {"neighbours": ev.knn_neighbours, "shrink": 0.0}
    assert grids["popularity"][1][0] == {"days": ev.popularity_days}  # 0: all of the history
    assert grids["ease"][1][0] == {"l2": ev.ease_l2} and len(grids["ease"][1]) == len(set(ev.ease_l2_grid) | {ev.ease_l2})
    assert "ease" not in zoo.baseline_grids(tiny_settings, n_items=ev.ease_max_items + 1)
    ev.tune_baselines = False
    assert all(len(grid) == 1 for _, grid in zoo.baseline_grids(tiny_settings).values())


def test_tune_baselines_is_tune_over_each_wanted_grid(toy_home, tiny_settings):
    """The one place the training job and the comparison harness choose their baselines."""
    from llmrec_core.tuning import tune_baselines

    home, last = toy_home
    snap = load_snapshot(tiny_settings, last)
    valid = protocols.temporal(snap.events, snap.n_users, snap.end_ts - 5 * protocols.DAY, 5)
    tuned = tune_baselines(tiny_settings, snap, valid, [10], "ndcg_10", wanted={"popularity", "item_knn"})
    assert [t.name for t in tuned] == ["popularity", "item_knn"]
    popularity, knn = tuned
    days = [tiny_settings.evaluation.popularity_days, *tiny_settings.evaluation.popularity_days_grid]
    assert [t["days"] for t in popularity.trials] == days and popularity.params["days"] in days
    make, grid = zoo.baseline_grids(tiny_settings, snap.n_items)["item_knn"]
    best, trials = tune(make, grid, snap, valid.train, valid, [10], "ndcg_10")
    assert knn.params == best and knn.trials == [{**p, "ndcg_10": v} for p, v in trials] and knn.seconds > 0
    assert isinstance(knn.build(), ItemKNN) and knn.build().neighbours == best["neighbours"]


def test_the_re_ranker_is_trained_on_a_cpu_only_when_asked(tiny_settings):
    """auto: a GPU only (on a CPU, capped, it has not paid and scoring would not use it); on: a CPU too."""
    from llmrec_core.recommenders.classic import Popularity
    from llmrec_core.recommenders.reranked import Reranked

    base = Popularity()  # no device: a CPU
    for enabled, wanted in (("auto", None), ("off", None), ("on", Reranked)):
        tiny_settings.rerank.enabled = enabled
        made = zoo.reranker(tiny_settings, base)
        assert (made if made is None else type(made)) is wanted, enabled
