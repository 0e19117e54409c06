"""The registry as MLflow users read it: ``challenger`` on the newest refused version, and each
version's description holding the gate's validation table and decision."""

from __future__ import annotations

import math

from mlflow import MlflowClient

from llmrec_core.io import tracking
from llmrec_core.registry.gate import GateDecision, report
from tests.faults.conftest import toy_registry  # noqa: F401  (a fixture)
from tests.faults.test_forged_model import register_popularity


def _alias(settings, alias: str) -> str | None:
    mv = tracking.aliased(settings, alias)
    return None if mv is None else str(mv.version)


def test_challenger_is_the_newest_refused_version_and_never_the_champion(toy_registry):  # noqa: F811
    settings, last, snap = toy_registry
    v1, v2, v3 = (register_popularity(settings, snap, str(last), run=f"run {n}") for n in range(3))
    tracking.promote(settings, v1, "first champion", expected=None)
    assert _alias(settings, "challenger") is None
    tracking.refuse(settings, v2, "does not beat champion v1")
    assert _alias(settings, "challenger") == v2
    tracking.refuse(settings, v3, "does not beat champion v1")
    assert _alias(settings, "challenger") == v3
    # A refusal recorded late (an older training finishing last) does not take it back.
    tracking.refuse(settings, v2, "judged again")
    assert _alias(settings, "challenger") == v3
    # The challenger promoted after all (judged again against a new champion): it stops being one,
    # as the registered model's page shows.
    tracking.promote(settings, v3, "beats champion v1", expected=v1)
    aliases = MlflowClient().get_registered_model("llmrec").aliases
    assert {alias: str(v) for alias, v in aliases.items()} == {"champion": v3}


def test_description_is_the_gate_table_and_decision(toy_registry):  # noqa: F811
    settings, last, snap = toy_registry
    version = register_popularity(settings, snap, str(last))
    results = {"llmrec": {"ndcg_10": 0.21, "ndcg_10_warm_users": 0.25, "ndcg_10_cold_users": math.nan, "recall_20": 0.4, "auc": 0.7},
               "popularity": {"ndcg_10": 0.3, "ndcg_10_warm_users": 0.31, "ndcg_10_cold_users": 0.1, "recall_20": 0.5},
               "ease": {"ndcg_10": 0.1}}
    decision = GateDecision(False, "validation ndcg_10 0.2100 does not beat popularity 0.3000")
    text = report(settings, results, "llmrec", ["llmrec", "popularity", "als"], 0.25, "3", decision)
    tracking.describe(settings, version, text)
    stored = MlflowClient().get_model_version("llmrec", version).description
    lines = stored.splitlines()
    assert lines[0] == "**Not promoted**: validation ndcg_10 0.2100 does not beat popularity 0.3000"
    assert "| model | ndcg_10 | ndcg_10_warm_users | ndcg_10_cold_users | recall_20 | auc |" in lines
    assert "| **llmrec** (this version) | 0.2100 | 0.2500 | – | 0.4000 | 0.7000 |" in lines
    assert "| popularity | 0.3000 | 0.3100 | 0.1000 | 0.5000 | – |" in lines
    assert "| champion v3, re-evaluated | 0.2500 | – | – | – | – |" in lines
    assert not any(line.startswith(("| ease", "| als")) for line in lines)  # only the gate's rivals that were measured
    promoted = report(settings, results, "popularity", ["llmrec"], None, None, GateDecision(True, "first champion"))
    assert promoted.startswith("**Promoted** to `champion`: first champion") and "champion v" not in promoted
