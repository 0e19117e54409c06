"""Scoring serves only what the gate promoted, and a promotion never overwrites a champion
that moved while the version was being judged.

Anyone with access to the registry could move ``champion`` onto a version the gate refused and
the nightly job served it; and two trainings finishing close together both moved the alias, the
later one winning whatever the gate had compared it with."""

from __future__ import annotations

import types

import mlflow
import pytest
from mlflow import MlflowClient

from jobs import score, train
from llmrec_core.data.snapshot import load_snapshot
from llmrec_core.io import tracking
from llmrec_core.registry.gate import GateDecision
from tests.faults.test_forged_model import register_popularity


@pytest.fixture
def two_versions(toy_registry):
    """Version 1 promoted (the champion), version 2 refused by the gate."""
    settings, last, snap = toy_registry
    versions = [register_popularity(settings, snap, str(last), run=run) for run in ("first", "second")]
    tracking.promote(settings, versions[0], "first champion", expected=None)
    tracking.refuse(settings, versions[1], "validation ndcg_10 0.1 does not beat champion v1 0.2")
    return settings, last, versions


def test_a_refused_version_is_not_served_without_force(two_versions, capsys):
    settings, last, (v1, v2) = two_versions
    # Moved by hand in the registry: that is no promotion.
    MlflowClient().set_registered_model_alias(settings.tracking.registered_model, settings.tracking.champion_alias, v2)
    for argv in (["--ds", str(last)], ["--ds", str(last), "--model-version", v2]):
        assert score.main(argv) == 1
        err = capsys.readouterr().err
        assert f"version {v2} was not promoted by the gate (validation ndcg_10 0.1 does not beat champion v1 0.2)" in err
        assert "--force" in err and "Traceback" not in err
    assert not (settings.home / "warehouse.duckdb").exists()

    assert score.main(["--ds", str(last), "--force", "--forced-by", "alice"]) == 0
    assert "FORCED by alice" in capsys.readouterr().out
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.kind = 'scoring'", output_format="list")
    assert len(runs) == 1 and runs[0].data.tags["forced"] == "true" and runs[0].data.tags["forced_by"] == "alice"
    assert runs[0].data.tags["forced_reason"].startswith("validation ndcg_10 0.1") and runs[0].data.tags["model_version"] == v2


def test_the_promoted_champion_is_served_without_force(two_versions):
    settings, last, (v1, _) = two_versions
    out = score.run(settings, last)
    assert out["version"] == v1 and "forced" not in out


def test_a_promotion_is_a_compare_and_set(two_versions):
    settings, _, (v1, v2) = two_versions
    with pytest.raises(tracking.ChampionMoved, match=f"moved from none to {v1}"):
        tracking.promote(settings, v2, "judged when there was no champion", expected=None)
    assert tracking.champion(settings).version == int(v1)
    tracking.promote(settings, v2, "beats champion v1", expected=v1)
    assert tracking.champion(settings).version == int(v2)


def test_a_champion_that_moved_during_training_is_judged_again_not_overwritten(two_versions):
    settings, last, (v1, v2) = two_versions
    v3 = register_popularity(settings, load_snapshot(settings, last), str(last), {"model": "llmrec"}, run="third")
    # v3 was judged against v1 and would win; meanwhile another run promoted v2.
    tracking.promote(settings, v2, "another training run", expected=v1)
    judged = []

    def judge_again():
        judged.append(tracking.champion(settings).version)
        return [("llmrec", GateDecision(False, f"does not beat champion v{v2}"))], 0.3, v2

    r = types.SimpleNamespace(settings=settings)
    out = train.settle(r, [{"model": "llmrec", "version": v3}], [("llmrec", GateDecision(True, f"beats champion v{v1}"))], v1, judge_again)
    assert judged == [int(v2)] and out == [{"model": "llmrec", "version": v3, "promoted": False, "reason": f"does not beat champion v{v2}"}]
    assert tracking.champion(settings).version == int(v2)
    assert MlflowClient().get_model_version(settings.tracking.registered_model, v3).tags["promotion"] == f"not promoted: does not beat champion v{v2}"
