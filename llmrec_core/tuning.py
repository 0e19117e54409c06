"""Hyper-parameters chosen on validation, for the baselines as for the model.

Each candidate is fitted on the validation split's training events and measured on the split;
the best value of the gate metric wins (ties: the earlier candidate, i.e. the configured
values). The test window is never looked at.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Container
from dataclasses import dataclass

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.protocols import EvalSplit
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.evaluation import evaluate
from llmrec_core.recommenders import zoo
from llmrec_core.recommenders.base import Recommender
from llmrec_core.settings import Settings

log = logging.getLogger(__name__)


def tune(make: Callable[..., Recommender], grid: list[dict], snap: Snapshot, train: Interactions, valid: EvalSplit,
         ks: list[int], metric: str) -> tuple[dict, list[tuple[dict, float]]]:
    """The best parameters of ``grid`` by ``metric`` on ``valid``, and every trial."""
    if len(grid) == 1:
        return grid[0], []
    trials = []
    for params in grid:
        value = evaluate(make(**params).fit(snap, train), valid, snap, ks)[metric]
        trials.append((params, value))
    best = max(range(len(trials)), key=lambda i: (trials[i][1] if math.isfinite(trials[i][1]) else -math.inf, -i))
    log.info("tuned on %s: %s (%s %.4f, %d candidates)", valid.name, trials[best][0], metric, trials[best][1], len(grid))
    return trials[best][0], trials


@dataclass
class Tuned:
    """A baseline's constructor, the values that won on validation, and every trial (empty when
    there was only one candidate)."""

    name: str
    make: Callable[..., Recommender]
    params: dict
    trials: list[dict]
    seconds: float  # spent tuning

    def build(self) -> Recommender:
        return self.make(**self.params)


def tune_baselines(settings: Settings, snap: Snapshot, valid: EvalSplit, ks: list[int], metric: str,
                   wanted: Container[str] | None = None) -> list[Tuned]:
    """Each baseline of ``zoo.baseline_grids`` (those in ``wanted``, or all) tuned on ``valid``;
    the training job and the comparison harness both choose their baselines here."""
    out = []
    for name, (make, grid) in zoo.baseline_grids(settings, snap.n_items).items():
        if wanted is None or name in wanted:
            start = time.perf_counter()
            params, trials = tune(make, grid, snap, valid.train, valid, ks, metric)
            out.append(Tuned(name, make, params, [{**p, metric: v} for p, v in trials], time.perf_counter() - start))
    return out
