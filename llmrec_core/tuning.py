"""Hyper-parameters chosen on validation, for the baselines as for the model.

Each candidate is fitted on the validation split's training events and measured on the split;
the best value of the gate metric wins (ties: the earlier candidate, i.e. the configured
values). The test window is never looked at.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.protocols import EvalSplit
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.evaluation import evaluate
from llmrec_core.recommenders.base import Recommender

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
