"""The promotion gate: when a newly trained version may become the champion.

Pure decision on metrics measured on the same validation data: the candidate must beat
popularity, and beat the current champion (re-evaluated on this validation window) by the
configured margin. Every outcome carries a reason that ends up as a tag on the version.
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


def decide(metric: str, candidate: float, popularity: float, champion: float | None, margin: float,
           champion_version: str | None = None, champion_note: str | None = None) -> GateDecision:
    if not math.isfinite(candidate):
        return GateDecision(False, f"validation {metric} is not a number")
    if not candidate > popularity:  # also refuses when popularity could not be measured
        return GateDecision(False, f"validation {metric} {candidate:.4f} does not beat popularity {popularity:.4f}")
    if champion_note is not None:
        return GateDecision(False, champion_note)
    if champion is None:
        return GateDecision(True, f"first champion: validation {metric} {candidate:.4f} beats popularity {popularity:.4f}")
    if candidate > champion + margin:
        return GateDecision(True, f"validation {metric} {candidate:.4f} beats champion v{champion_version} "
                                  f"{champion:.4f} by more than {margin:g}")
    return GateDecision(False, f"validation {metric} {candidate:.4f} does not beat champion v{champion_version} "
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
    value = evaluate(rec, ranking, snap, settings.evaluation.ks, item_vectors)[settings.evaluation.metric]
    return value, current.version, None


def judge(settings: Settings, results: dict[str, dict[str, float]], model: str, snap: Snapshot, ranking: EvalSplit,
          item_vectors: np.ndarray | None) -> tuple[GateDecision, float | None]:
    """The decision for ``model``'s new version against popularity and the champion, and the
    champion's metric (None without one)."""
    metric = settings.evaluation.metric
    value, version, note = champion_metric(settings, snap, ranking, item_vectors)
    decision = decide(metric, results[model][metric], results["popularity"][metric], value,
                      settings.tracking.promote_margin, version, note)
    return decision, value
