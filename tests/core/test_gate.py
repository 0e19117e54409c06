"""The promotion gate: every branch of decide(), and reasons that carry the numbers."""

from __future__ import annotations

import math

import pytest

from llmrec_core.registry.gate import GateDecision, bar, decide

POP = {"popularity": {"ndcg_10": 0.1}}


def m(overall: float, warm: float = math.nan, cold: float = math.nan) -> dict[str, float]:
    return {"ndcg_10": overall, "ndcg_10_warm_users": warm, "ndcg_10_cold_users": cold}


@pytest.mark.parametrize("candidate", [math.nan, math.inf, -math.inf])
def test_candidate_not_a_number(candidate):
    d = decide("ndcg_10", m(candidate), POP, 0.2, 0.0, "3")
    assert d == GateDecision(False, "validation ndcg_10 is not a number")


def test_must_beat_popularity():
    d = decide("ndcg_10", m(0.05), POP, None, 0.0)
    assert d == GateDecision(False, "validation ndcg_10 0.0500 does not beat popularity 0.1000", "popularity")
    # Equal is not beating.
    d = decide("hr_10", {"hr_10": 0.1}, {"popularity": {"hr_10": 0.1}}, None, 0.0)
    assert not d.promote
    assert d.reason == "validation hr_10 0.1000 does not beat popularity 0.1000"


def test_must_beat_the_best_tuned_baseline_not_only_popularity():
    rivals = {"popularity": m(0.10), "item_knn": m(0.12), "ease": m(0.16), "als": m(math.nan)}
    d = decide("ndcg_10", m(0.15), rivals, None, 0.0)
    assert d == GateDecision(False, "validation ndcg_10 0.1500 does not beat ease 0.1600", "ease")
    # A baseline that could not be measured (ALS with no known users) sets no bar; popularity must be measured.
    assert decide("ndcg_10", m(0.17), rivals, None, 0.0).promote
    d = decide("ndcg_10", m(0.17), {**rivals, "popularity": m(math.nan)}, None, 0.0)
    assert not d.promote and d.reason == "popularity's validation ndcg_10 could not be measured"


def test_warm_users_against_the_best_baseline_and_cold_users_against_popularity():
    rivals = {"popularity": m(0.10, 0.08, 0.30), "ease": m(0.12, 0.14, math.nan)}
    d = bar("ndcg_10", m(0.13, 0.13, 0.31), rivals)
    assert d == GateDecision(False, "validation ndcg_10 for users with history 0.1300 does not beat ease 0.1400", "ease")
    d = bar("ndcg_10", m(0.13, 0.15, 0.29), rivals)
    assert d == GateDecision(False, "validation ndcg_10 for users without history 0.2900 is below popularity 0.3000", "popularity")
    assert bar("ndcg_10", m(0.13, 0.15, 0.30), rivals) is None  # equal to popularity on cold users is enough
    assert bar("ndcg_10", m(0.13, 0.15, math.nan), rivals) is None  # no cold users in the window


def test_first_champion():
    d = decide("ndcg_10", m(0.3), {**POP, "ease": m(0.2)}, None, 0.05)
    assert d == GateDecision(True, "first champion: validation ndcg_10 0.3000 beats ease, popularity")
    # A baseline that already won validation has no rivals left: only the champion to beat.
    assert decide("ndcg_10", m(0.2), {}, None, 0.0) == GateDecision(True, "first champion: validation ndcg_10 0.2000")


def test_beats_champion_by_margin():
    d = decide("ndcg_10", m(0.3), POP, 0.25, 0.01, champion_version="3")
    assert d.promote
    assert d.reason == "validation ndcg_10 0.3000 beats champion v3 0.2500 by more than 0.01"


def test_within_margin_is_refused():
    d = decide("ndcg_10", m(0.3), POP, 0.295, 0.01, champion_version="3")
    assert not d.promote and d.beaten_by is None
    assert d.reason == "validation ndcg_10 0.3000 does not beat champion v3 0.2950 by more than 0.01"


def test_equal_to_champion_with_zero_margin_is_refused():
    d = decide("ndcg_10", m(0.3), POP, 0.3, 0.0, champion_version="7")
    assert d == GateDecision(False, "validation ndcg_10 0.3000 does not beat champion v7 0.3000 by more than 0")
    assert decide("ndcg_10", m(0.3001), POP, 0.3, 0.0, champion_version="7").promote


def test_worse_than_champion_is_refused():
    d = decide("ndcg_10", m(0.2), POP, 0.25, 0.0, champion_version="2")
    assert not d.promote
    assert "0.2000" in d.reason and "v2 0.2500" in d.reason


def test_champion_note_refuses_even_a_better_candidate():
    note = "champion v4 could not be re-evaluated on this window"
    assert decide("ndcg_10", m(0.9), POP, None, 0.0, champion_note=note) == GateDecision(False, note)
    assert decide("ndcg_10", m(0.9), POP, 0.2, 0.0, "4", champion_note=note) == GateDecision(False, note)


def test_the_bar_is_checked_before_champion_note():
    d = decide("ndcg_10", m(0.05), POP, None, 0.0, champion_note="note")
    assert d.reason == "validation ndcg_10 0.0500 does not beat popularity 0.1000"


def test_the_gate_setting_names_the_baselines_the_training_job_tunes(settings):
    from llmrec_core.recommenders import zoo
    from llmrec_core.settings.tracking import BASELINES

    # settings cannot import the recommenders (a lower layer), so the names are listed twice.
    assert set(BASELINES) == set(zoo.baseline_grids(settings)) == set(settings.tracking.gate_baselines)
    with pytest.raises(ValueError, match="gate_baselines must name one or more of"):
        type(settings.tracking)(gate_baselines=["popularity", "sasrec"])
