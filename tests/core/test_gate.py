"""The promotion gate: every branch of decide(), and reasons that carry the numbers."""

from __future__ import annotations

import math

import pytest

from llmrec_core.registry.gate import GateDecision, decide


@pytest.mark.parametrize("candidate", [math.nan, math.inf, -math.inf])
def test_candidate_not_a_number(candidate):
    d = decide("ndcg_10", candidate, 0.1, 0.2, 0.0, "3")
    assert d == GateDecision(False, "validation ndcg_10 is not a number")


def test_must_beat_popularity():
    d = decide("ndcg_10", 0.05, 0.1, None, 0.0)
    assert d == GateDecision(False, "validation ndcg_10 0.0500 does not beat popularity 0.1000")
    # Equal is not beating.
    d = decide("hr_10", 0.1, 0.1, None, 0.0)
    assert not d.promote
    assert d.reason == "validation hr_10 0.1000 does not beat popularity 0.1000"


def test_first_champion():
    d = decide("ndcg_10", 0.3, 0.1, None, 0.05)
    assert d == GateDecision(True, "first champion: validation ndcg_10 0.3000 beats popularity 0.1000")


def test_beats_champion_by_margin():
    d = decide("ndcg_10", 0.3, 0.1, 0.25, 0.01, champion_version="3")
    assert d.promote
    assert d.reason == "validation ndcg_10 0.3000 beats champion v3 0.2500 by more than 0.01"


def test_within_margin_is_refused():
    d = decide("ndcg_10", 0.3, 0.1, 0.295, 0.01, champion_version="3")
    assert not d.promote
    assert d.reason == "validation ndcg_10 0.3000 does not beat champion v3 0.2950 by more than 0.01"


def test_equal_to_champion_with_zero_margin_is_refused():
    d = decide("ndcg_10", 0.3, 0.1, 0.3, 0.0, champion_version="7")
    assert d == GateDecision(False, "validation ndcg_10 0.3000 does not beat champion v7 0.3000 by more than 0")
    assert decide("ndcg_10", 0.3001, 0.1, 0.3, 0.0, champion_version="7").promote


def test_worse_than_champion_is_refused():
    d = decide("ndcg_10", 0.2, 0.1, 0.25, 0.0, champion_version="2")
    assert not d.promote
    assert "0.2000" in d.reason and "v2 0.2500" in d.reason


def test_champion_note_refuses_even_a_better_candidate():
    note = "champion v4 could not be re-evaluated on this window"
    assert decide("ndcg_10", 0.9, 0.1, None, 0.0, champion_note=note) == GateDecision(False, note)
    assert decide("ndcg_10", 0.9, 0.1, 0.2, 0.0, "4", champion_note=note) == GateDecision(False, note)


def test_popularity_is_checked_before_champion_note():
    d = decide("ndcg_10", 0.05, 0.1, None, 0.0, champion_note="note")
    assert d.reason == "validation ndcg_10 0.0500 does not beat popularity 0.1000"
