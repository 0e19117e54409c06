"""The promotion gate: when a newly trained version may become the champion.

Pure decision on metrics measured on the same validation data: the candidate must beat
popularity, and beat the current champion (re-evaluated on this validation window) by the
configured margin. Every outcome carries a reason that ends up as a tag on the version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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
