"""Hyper-parameters chosen on validation, for the baselines as for the model.

Each candidate is fitted on the validation split's training events and measured on the split;
the best value of the gate metric wins (ties: the earlier candidate, i.e. the configured
values for the baselines, the smaller weight for the cold-taste weight, ``click`` for the
audience). The test window is never looked at.
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
from llmrec_core.evaluation import FALLBACK_DAYS, audience_recall, evaluate, warm_cold_recall, warm_cold_rows
from llmrec_core.recommenders import zoo
from llmrec_core.recommenders.base import History, Recommender
from llmrec_core.settings import Settings

log = logging.getLogger(__name__)

# Fewer users with history than this rating a new item in the validation window, and the
# configured ``model.cold_taste_weight`` is kept: too few to choose by.
COLD_TASTE_MIN_USERS = 10
# Fewer new items than this with an audience in the validation window, and the configured
# ``model.audience`` is kept.
AUDIENCE_MIN_ITEMS = 10


def _best(values: list[float]) -> int:
    """The index of the best value: a value that is not a number ranks last, and ties go to the
    earlier candidate (the configured one comes first)."""
    return max(range(len(values)), key=lambda i: (values[i] if math.isfinite(values[i]) else -math.inf, -i))


def _winner(trials: dict):
    """The key of the best trial (:func:`_best`), or None when every trial scores the same: then
    nothing was chosen, and the configured value stays."""
    return list(trials)[_best(list(trials.values()))] if len(set(trials.values())) > 1 else None


def tune(make: Callable[..., Recommender], grid: list[dict], snap: Snapshot, train: Interactions, valid: EvalSplit,
         ks: list[int], metric: str, fallback_days: int = FALLBACK_DAYS) -> tuple[dict, list[tuple[dict, float]]]:
    """The best parameters of ``grid`` by ``metric`` on ``valid``, and every trial."""
    if len(grid) == 1:
        return grid[0], []
    trials = []
    for params in grid:
        value = evaluate(make(**params).fit(snap, train), valid, snap, ks, fallback_days=fallback_days)[metric]
        trials.append((params, value))
    best = _best([v for _, v in trials])
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
            params, trials = tune(make, grid, snap, valid.train, valid, ks, metric, settings.scoring.popular_days)
            out.append(Tuned(name, make, params, [{**p, metric: v} for p, v in trials], time.perf_counter() - start))
    return out


@dataclass
class ColdTaste:
    """``model.cold_taste_weight`` as chosen on a validation window: the weight, how many users
    with history chose it, and each weight's recall@``k`` for them (``None`` when there were too
    few users, no grid, or no text)."""

    weight: float
    users: int
    trials: dict[float, float] | None
    k: int

    def metrics(self) -> dict[str, float]:
        """What the training job logs to MLflow."""
        out = {"cold_taste_weight": self.weight, "cold_taste_users": float(self.users)}
        return out | {f"cold_taste_{w:g}_recall_{self.k}_warm_users": v for w, v in (self.trials or {}).items()}


def _try_settings(rec, candidates: dict, measure: Callable[[], float]) -> dict:
    """``measure()`` of ``rec`` with each candidate's model settings (a dict of updates), keyed
    as ``candidates``; ``rec`` keeps its own settings afterwards."""
    configured = rec.model_settings
    trials = {}
    try:
        for key, update in candidates.items():
            rec.model_settings = configured.model_copy(update=update)
            trials[key] = measure()
    finally:
        rec.model_settings = configured
    return trials


def choose_cold_taste(rec, snap: Snapshot, split: EvalSplit, grid: list[float], k: int = 20) -> ColdTaste:
    """``model.cold_taste_weight`` for a fitted language model ``rec``, chosen on ``split`` (a
    ``cold_items`` split of the validation window, cut where the model's training events end):
    the weight of ``grid`` whose lists give the users with history the best recall@``k`` of the
    new items they rated in the window, ranked among those items (ties: the earlier weight).
    The weight is set on ``rec``. It stays as configured for a model that does not read text, an
    empty grid, fewer than ``COLD_TASTE_MIN_USERS`` such users, or when every weight scores the
    same (as when the window has ``k`` new items or fewer: every list holds them all)."""
    configured = rec.model_settings.cold_taste_weight
    if not (rec.model_settings.use_text and grid):
        return ColdTaste(configured, 0, None, k)
    rows = warm_cold_rows(split, snap)
    if len(rows) < COLD_TASTE_MIN_USERS:
        log.info("%s: %d users with history rated a new item on the validation window, fewer than %d: cold_taste_weight stays %g",
                 rec.name, len(rows), COLD_TASTE_MIN_USERS, configured)
        return ColdTaste(configured, len(rows), None, k)

    history = History.of(split.history, snap.n_users)  # one object: the model keeps its user vectors between weights
    trials = _try_settings(rec, {float(w): {"cold_taste_weight": float(w)} for w in grid},
                           lambda: warm_cold_recall(rec, split, snap, k, rows, history))
    best = configured if (won := _winner(trials)) is None else won
    rec.model_settings = rec.model_settings.model_copy(update={"cold_taste_weight": best})
    log.info("%s: cold_taste_weight %g on the validation window (recall@%d of %d users with history: %s)", rec.name, best, k,
             len(rows), ", ".join(f"{w:g}: {v:.4f}" for w, v in trials.items()))
    return ColdTaste(best, len(rows), trials, k)


@dataclass
class Audience:
    """``model.audience`` (with ``model.audience_activity_weight``) as chosen on a validation
    window: the audience, the weight, how many new items chose it, and each candidate's audience
    recall@``k`` (``None`` when there were too few items or no grid), keyed ``click`` and
    ``share_<w>``."""

    audience: str
    weight: float
    items: int
    trials: dict[str, float] | None
    k: int

    def metrics(self) -> dict[str, float]:
        """What the training job logs to MLflow."""
        out = {"audience_share": float(self.audience == "share"), "audience_activity_weight": self.weight,
               "audience_items": float(self.items)}
        return out | {f"audience_{key}_recall_{self.k}": v for key, v in (self.trials or {}).items()}


def choose_audience(rec, snap: Snapshot, split: EvalSplit, grid: list[float], k: int = 20) -> Audience:
    """``model.audience`` for a fitted, calibrated language model ``rec``, chosen on ``split`` (a
    ``cold_items`` split of the validation window, cut where the model's training events end):
    ``click``, then ``share`` with each activity weight of ``grid``, by the recall@``k`` of the
    users who engaged with each new item in the window among its top-``k`` audience (ties: the
    earlier candidate). The choice is set on ``rec`` and ranks every item's audience, new or not.
    It stays as configured for a model that does not read text (it cannot score a new item), an
    empty grid, fewer than ``AUDIENCE_MIN_ITEMS`` new items with an audience, or when every
    candidate scores the same."""
    ms = rec.model_settings
    configured = (ms.audience, ms.audience_activity_weight)
    if not (ms.use_text and grid):  # a model without text cannot score a new item: nothing to choose by
        return Audience(*configured, 0, None, k)
    items = sum(len(t) > 0 for t in split.item_truth)
    if items < AUDIENCE_MIN_ITEMS:
        log.info("%s: %d new items with an audience on the validation window, fewer than %d: audience stays %s",
                 rec.name, items, AUDIENCE_MIN_ITEMS, configured[0])
        return Audience(*configured, items, None, k)
    history = History.of(split.history, snap.n_users)
    candidates = {"click": {"audience": "click"}} | {f"share_{w:g}": {"audience": "share", "audience_activity_weight": float(w)} for w in grid}
    trials = _try_settings(rec, candidates, lambda: audience_recall(rec, split, k, history))
    if (won := _winner(trials)) is not None:
        rec.model_settings = rec.model_settings.model_copy(update=candidates[won])
    ms = rec.model_settings
    log.info("%s: audience %s (activity weight %g) on the validation window (recall@%d over %d new items: %s)", rec.name, ms.audience,
             ms.audience_activity_weight, k, items, ", ".join(f"{key}: {v:.4f}" for key, v in trials.items()))
    return Audience(ms.audience, ms.audience_activity_weight, items, trials, k)
