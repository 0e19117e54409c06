"""The promotion gate: when a newly trained version may become the champion.

Pure decisions on metrics measured on the same validation data. The language model must beat
the best tuned baseline (popularity, item-kNN, EASE, ALS, content) on the gate metric overall and for
users with history, must do at least as well as popularity for users without history, and must
beat the current champion (re-evaluated on this validation window) by the configured margin.
When it loses to a baseline, the training job can register that baseline instead
(``tracking.serve_baseline_winner``), and the refusal says which model won and where. Every outcome carries a reason that ends up as a tag on the version.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmrec_core.data.protocols import EvalSplit
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.days import parse_day
from llmrec_core.evaluation import evaluate
from llmrec_core.io import tracking
from llmrec_core.settings import Settings


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    beaten_by: str | None = None  # the baseline that did better on validation, if that was the reason


def _best(rivals: dict[str, dict[str, float]], key: str) -> tuple[str, float] | None:
    measured = [(name, m[key]) for name, m in rivals.items() if math.isfinite(m.get(key, math.nan))]
    return max(measured, key=lambda nv: nv[1]) if measured else None


def bar(metric: str, scores: dict[str, float], rivals: dict[str, dict[str, float]]) -> GateDecision | None:
    """Why ``scores`` do not clear the validation bar set by ``rivals`` (the tuned baselines), or
    None when they do."""
    value = scores.get(metric, math.nan)
    popularity = rivals.get("popularity", {}).get(metric)
    if popularity is not None and not math.isfinite(popularity):
        return GateDecision(False, f"popularity's validation {metric} could not be measured")
    best = _best(rivals, metric)
    if best is not None and not value > best[1]:
        return GateDecision(False, f"validation {metric} {value:.4f} does not beat {best[0]} {best[1]:.4f}", best[0])
    warm, cold = f"{metric}_warm_users", f"{metric}_cold_users"
    best_warm, mine = _best(rivals, warm), scores.get(warm, math.nan)
    if best_warm is not None and math.isfinite(mine) and not mine > best_warm[1]:
        return GateDecision(False, f"validation {metric} for users with history {mine:.4f} does not beat "
                                   f"{best_warm[0]} {best_warm[1]:.4f}", best_warm[0])
    pop_cold, mine = rivals.get("popularity", {}).get(cold, math.nan), scores.get(cold, math.nan)
    if math.isfinite(pop_cold) and math.isfinite(mine) and mine < pop_cold:
        return GateDecision(False, f"validation {metric} for users without history {mine:.4f} is below "
                                   f"popularity {pop_cold:.4f}", "popularity")
    return None


def decide(metric: str, scores: dict[str, float], rivals: dict[str, dict[str, float]], champion: float | None,
           margin: float, champion_version: str | None = None, champion_note: str | None = None) -> GateDecision:
    """Promote the version with validation ``scores`` or not: it must clear :func:`bar` against
    ``rivals`` (empty for a baseline that already won validation), then beat the champion."""
    value = scores.get(metric, math.nan)
    if not math.isfinite(value):
        return GateDecision(False, f"validation {metric} is not a number")
    refused = bar(metric, scores, rivals)
    if refused is not None:
        return refused
    if champion_note is not None:
        return GateDecision(False, champion_note)
    if champion is None:
        beats = f" beats {', '.join(sorted(rivals))}" if rivals else ""
        return GateDecision(True, f"first champion: validation {metric} {value:.4f}{beats}")
    if value > champion + margin:
        return GateDecision(True, f"validation {metric} {value:.4f} beats champion v{champion_version} "
                                  f"{champion:.4f} by more than {margin:g}")
    return GateDecision(False, f"validation {metric} {value:.4f} does not beat champion v{champion_version} "
                               f"{champion:.4f} by more than {margin:g}")


def champion_metric(settings: Settings, snap: Snapshot, ranking: EvalSplit,
                    item_vectors: np.ndarray | None) -> tuple[float | None, str | None, str | None]:
    """The current champion's gate metric on this validation split (its validation model, so no
    leakage), its version, or why it cannot be compared."""
    from llmrec_core.recommenders.portable import restore
    from llmrec_core.registry.bundle import load_bundle

    current = tracking.champion(settings)
    if current is None:
        return None, None, None
    with tempfile.TemporaryDirectory() as tmp:
        bundle = load_bundle(tracking.download_bundle(settings, current.version, Path(tmp)))
    if parse_day(bundle.meta["ds"]) > snap.ds:
        return None, current.version, (f"champion v{current.version} was trained on data up to {bundle.meta['ds']}, "
                                       f"after this run's day {snap.ds}: not comparable")
    rec = restore(bundle.gate, snap, settings.train.device)
    value = evaluate(rec, ranking, snap, settings.evaluation.ks, item_vectors,
                     fallback_days=settings.scoring.popular_days)[settings.evaluation.metric]
    return value, current.version, None


def judge(settings: Settings, results: dict[str, dict[str, float]], model: str, baselines: list[str], snap: Snapshot,
          ranking: EvalSplit, item_vectors: np.ndarray | None) -> tuple[list[tuple[str, GateDecision]], float | None, str | None]:
    """The decision for ``model``'s new version against the tuned ``baselines`` and the champion;
    when a baseline beat it and ``tracking.serve_baseline_winner`` is on, also the decision for
    that baseline (the best overall, or the best for users with history, or popularity for users
    without, whichever bar the model failed first), which then only has to beat the champion.
    Served, a baseline gives users it cannot score the popularity fallback, as every model does. Returns the decisions, the
    language model's first, the champion's metric (None without one) and its version, which a
    promotion must still find in place (``tracking.promote(expected=...)``)."""
    metric, margin = settings.evaluation.metric, settings.tracking.promote_margin
    champion, version, note = champion_metric(settings, snap, ranking, item_vectors)
    rivals = {b: results[b] for b in baselines if b in results}
    decision = decide(metric, results[model], rivals, champion, margin, version, note)
    out = [(model, decision)]
    if decision.beaten_by and settings.tracking.serve_baseline_winner:
        winner = decision.beaten_by  # the baseline that did better where the language model fell short
        won = decide(metric, results[winner], {}, champion, margin, version, note)
        out.append((winner, GateDecision(won.promote, f"{won.reason} ({model} was refused: {decision.reason})")))
    return out, champion, version


def report(settings: Settings, results: dict[str, dict[str, float]], candidate: str, rivals: list[str],
           champion: float | None, champion_version: str | None, decision: GateDecision) -> str:
    """The registry description of ``candidate``'s version (markdown): the gate's decision and the
    validation table it was made on: the candidate, its ``rivals`` and the champion, re-evaluated
    on the same window (only the gate metric is measured for it)."""
    metric, k = settings.evaluation.metric, max(settings.evaluation.ks)
    cols = [metric, f"{metric}_warm_users", f"{metric}_cold_users", f"recall_{k}", "auc"]
    verdict = f"**Promoted** to `{settings.tracking.champion_alias}`" if decision.promote else "**Not promoted**"
    lines = [f"{verdict}: {decision.reason}", "",
             f"Validation on the {settings.train.validation_days} days before the training day, models trained before them:", "",
             "| model | " + " | ".join(cols) + " |", "| --- |" + " ---: |" * len(cols)]
    for name in dict.fromkeys([candidate, *rivals]):
        if name in results:
            label = f"**{name}** (this version)" if name == candidate else name
            lines.append(f"| {label} | " + " | ".join(_cell(results[name].get(c)) for c in cols) + " |")
    if champion_version is not None:
        lines.append(f"| champion v{champion_version}, re-evaluated | {_cell(champion)} |" + " – |" * (len(cols) - 1))
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return f"{value:.4f}" if value is not None and math.isfinite(value) else "–"
