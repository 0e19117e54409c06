"""The training job end to end on the toy lake: MLflow runs, registry, gate, pyfunc, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs import train
from llmrec_core import tuning
from llmrec_core.data.snapshot import load_snapshot
from llmrec_core.io import tensorfile, tracking


@pytest.fixture
def trained(toy_home, tiny_settings, spark, monkeypatch):
    home, last = toy_home
    # The toy window's few users choose the cold-taste weight; configured otherwise, so the
    # served model shows which of the two it carries.
    monkeypatch.setattr(tuning, "COLD_TASTE_MIN_USERS", 1)
    monkeypatch.setattr(tuning, "AUDIENCE_MIN_ITEMS", 1)
    tiny_settings.evaluation.cold_taste_k = 2  # the toy window has few new items: every list of 20 would hold them all
    tiny_settings.model.cold_taste_weight = 3.0
    tiny_settings.model.audience, tiny_settings.model.audience_activity_weight = "share", 3.0  # neither is a candidate
    tiny_settings.train.epochs = 15
    tiny_settings.train.patience = 15  # the tiny model plateaus for a few epochs before it learns
    # The tiny random-weight model beats popularity on the toy lake but not item-kNN (see the
    # test of the full bar below): here the language model's own path, against popularity only.
    tiny_settings.tracking.gate_baselines = ["popularity"]
    tiny_settings.tracking.system_metrics_interval = 2  # the training run lasts longer: some samples
    first = train.run(tiny_settings, last, progress=False)
    return home, last, tiny_settings, first


def test_a_baseline_that_wins_validation_is_served_instead(toy_home, tiny_settings, spark):
    """With the bar of the baselines that read no text, item-kNN beats the tiny model on the toy
    lake, so the language model is refused, saying so, and item-kNN refit on everything becomes
    the champion."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from llmrec_core.registry.bundle import load_bundle

    home, last = toy_home
    tiny_settings.tracking.gate_baselines = ["popularity", "item_knn", "ease", "als"]
    out = train.run(tiny_settings, last, progress=False)
    res = out["results"]
    winner = max(("popularity", "item_knn", "ease", "als"), key=lambda b: res[b]["ndcg_10"])
    assert winner == "item_knn" and res["item_knn"]["ndcg_10"] > res["llmrec"]["ndcg_10"], res
    assert [v["model"] for v in out["versions"]] == ["llmrec", "item_knn"]
    refused, served = out["versions"]
    assert not refused["promoted"]
    assert refused["reason"] == f"validation ndcg_10 {res['llmrec']['ndcg_10']:.4f} does not beat item_knn {res['item_knn']['ndcg_10']:.4f}"
    assert served["promoted"] and out["champion"] == served["version"] == "2"
    assert served["reason"].startswith("first champion: validation ndcg_10") and "(llmrec was refused: " in served["reason"]

    client = MlflowClient(tiny_settings.tracking_uri)
    champion = client.get_model_version_by_alias("llmrec", "champion")
    assert str(champion.version) == "2" and champion.tags["model"] == "item_knn"
    assert client.get_model_version("llmrec", "1").tags["promotion"].startswith("not promoted: validation ndcg_10")
    # The refused language model is the challenger; each description holds the table the gate compared.
    assert str(client.get_model_version_by_alias("llmrec", "challenger").version) == refused["version"] == "1"
    assert f"| item_knn | {res['item_knn']['ndcg_10']:.4f} |" in client.get_model_version("llmrec", "1").description
    described = client.get_model_version("llmrec", "2").description
    assert described.startswith(f"**Promoted** to `champion`: {served['reason']}")
    assert f"| **item_knn** (this version) | {res['item_knn']['ndcg_10']:.4f} |" in described
    assert f"| llmrec | {res['llmrec']['ndcg_10']:.4f} |" in described and "| popularity |" in described
    bundle = load_bundle(tracking.download_bundle(tiny_settings, "2", home / "dl"))
    assert bundle.model["kind"] == bundle.gate["kind"] == "item_knn" and bundle.reranker is None
    assert bundle.meta["model"] == "item_knn" and bundle.meta["validation"]["ndcg_10"] == pytest.approx(res["item_knn"]["ndcg_10"])
    # Refit on everything up to D: it knows more items than the validation model.
    assert bundle.model["known"].sum() > bundle.gate["known"].sum()

    # The registered baseline answers the same requests from the history's IDs.
    snap = load_snapshot(tiny_settings, last)
    ids = list(snap.item_ids)
    model = mlflow.pyfunc.load_model(tracking.model_uri("llmrec", alias="champion"))
    scores = model.predict(pd.DataFrame({"history": [ids[:3], ids[:3]], "item_id": [ids[4], "unknown"]}))["score"].to_numpy()
    assert np.isfinite(scores[0]) and np.isnan(scores[1])
    # Its nightly lists say, in SQL, which model made them.
    import duckdb

    from jobs import score

    score.run(tiny_settings, last)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT model_version, model FROM publications WHERE ds = ?", [last]).fetchall() == [("2", "item_knn")]

    # Off: the language model is refused and nothing else is registered.
    tiny_settings.tracking.serve_baseline_winner = False
    again = train.run(tiny_settings, last, progress=False)
    assert [v["model"] for v in again["versions"]] == ["llmrec"] and again["champion"] is None
    assert str(client.get_model_version_by_alias("llmrec", "champion").version) == "2"
    assert str(client.get_model_version_by_alias("llmrec", "challenger").version) == again["version"] == "3"
    assert "| champion v2, re-evaluated |" in client.get_model_version("llmrec", "3").description


def test_the_content_baseline_can_win_the_gate_and_serve(toy_home, tiny_settings, spark):
    """The default bar includes the content baseline. On the toy lake an item's topic is in its
    title and each user keeps to a topic, so the users' taste in the text vectors wins
    validation: it is registered, refit on everything, and the nightly lists are its own, each
    with a reason from the user's history."""
    import duckdb

    from jobs import score
    from llmrec_core.registry.bundle import load_bundle

    home, last = toy_home
    assert "content" in tiny_settings.tracking.gate_baselines
    out = train.run(tiny_settings, last, progress=False)
    res = out["results"]
    assert max(tiny_settings.tracking.gate_baselines, key=lambda b: res[b]["ndcg_10"]) == "content"
    assert [v["model"] for v in out["versions"]] == ["llmrec", "content"] and out["versions"][1]["promoted"]
    bundle = load_bundle(tracking.download_bundle(tiny_settings, out["champion"], home / "dl"))
    assert bundle.model["kind"] == "content" and bundle.model["params"] == bundle.gate["params"]
    score.run(tiny_settings, last)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT model FROM publications WHERE ds = ?", [last]).fetchall() == [("content",)]
        rows = con.execute("SELECT source, reason FROM user_recommendations WHERE ds = ?", [last]).fetchall()
    model_rows = [reason for source, reason in rows if source == "model"]
    assert model_rows and all(reason.startswith("Because") for reason in model_rows)


def test_train_logs_registers_and_gates(trained):
    import mlflow
    from mlflow.tracking import MlflowClient

    home, last, settings, first = trained
    assert (home / "mlflow.db").is_file() and (home / "mlartifacts").is_dir()
    assert first["promoted"] and first["reason"].startswith("first champion"), first["reason"]
    results = first["results"]
    for name in ("llmrec", "seq_id_only", "seq_text_only", "popularity", "item_knn", "ease", "als", "content", "llmrec_rerank"):
        assert np.isfinite(results[name]["ndcg_10"]), name
    assert results["llmrec"]["ndcg_10"] > results["popularity"]["ndcg_10"]

    client = MlflowClient(settings.tracking_uri)
    exp = client.get_experiment_by_name("llmrec")
    runs = client.search_runs([exp.experiment_id])
    by_model = {r.data.tags.get("model"): r for r in runs if "model" in r.data.tags}
    parent = client.get_run(first["run_id"])
    assert parent.data.tags["ds"] == str(last) and parent.data.tags["rows.events"] == "812"
    assert len(parent.data.tags["git_commit"]) in (40, 7) or parent.data.tags["git_commit"] == "unknown"
    assert parent.data.params["model.encoder"] == "random:32x2"
    # The same metric names on every model's run, so the compare view lines them up.
    for name in ("llmrec", "seq_id_only", "popularity", "als", "item_knn", "ease", "content"):
        assert {"val_ndcg_10", "val_recall_20", "val_auc"} <= set(by_model[name].data.metrics), name
    # Baselines were tuned on the validation split: the chosen values are the best trial's.
    tuned = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=first["run_id"], artifact_path="results.json",
                                                                 tracking_uri=settings.tracking_uri)).read_text())["baseline_tuning"]
    for name, params in (("item_knn", ("neighbours", "shrink")), ("ease", ("l2",))):
        best = max(tuned[name], key=lambda trial: trial["ndcg_10"])
        assert len(tuned[name]) > 1 and {k: by_model[name].data.params[k] for k in params} == {k: str(best[k]) for k in params}
    curve = client.get_metric_history(by_model["llmrec"].info.run_id, "epoch_val_ndcg_10")
    assert sorted(m.step for m in curve) == list(range(1, 16))  # one point per epoch
    assert len(client.get_metric_history(by_model["llmrec"].info.run_id, "epoch_train_loss")) == 15
    artifacts = {a.path for a in client.list_artifacts(first["run_id"], "plots")}
    assert artifacts == {"plots/metrics_by_model.png", "plots/training_curves.png", "plots/reliability.png"}
    # MLflow's system metrics on the parent run only (the nested runs share its process).
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(parent.data.metrics)
    assert not any(k.startswith("system/") for r in runs if r.info.run_id != first["run_id"] for k in r.data.metrics)
    # The lake tables it read, as dataset inputs: the snapshot of D, and its validation window.
    inputs = {(i.dataset.name, {t.key: t.value for t in i.tags}["mlflow.data.context"]): i.dataset for i in parent.inputs.dataset_inputs}
    assert set(inputs) == {("clean_events", "training"), ("items", "training"), ("users", "training"), ("clean_events", "validation")}
    snap = load_snapshot(settings, last)
    assert json.loads(inputs["clean_events", "training"].source) == {"uri": str(home / "lake" / "clean_events")}
    assert json.loads(inputs["items", "training"].source) == {"uri": str(home / "lake" / "items" / f"ds={last}")}
    assert json.loads(inputs["clean_events", "training"].profile) == {"num_rows": len(snap.events)}
    window = int((snap.events.ts >= snap.end_ts - settings.train.validation_days * 86_400).sum())
    assert json.loads(inputs["clean_events", "validation"].profile) == {"num_rows": window} and 0 < window < len(snap.events)
    columns = {c["name"]: c["type"] for c in json.loads(inputs["items", "training"].schema)["mlflow_colspec"]}
    assert columns["item_id"] == "string" and columns["categories"] == "array" and columns["attributes"] == "map"

    version = client.get_model_version_by_alias("llmrec", "champion")
    assert str(version.version) == first["version"] == "1"
    assert version.tags["promotion"].startswith("promoted: first champion") and version.tags["ds"] == str(last)
    assert version.description.startswith(f"**Promoted** to `champion`: {first['reason']}")
    for name in ("llmrec", "popularity"):  # the candidate and the bar it had to clear
        m = results[name]
        row = " | ".join(f"{v:.4f}" if np.isfinite(v) else "–" for v in (m["ndcg_10"], m["ndcg_10_warm_users"], m["ndcg_10_cold_users"], m["recall_20"]))
        assert f"| {'**llmrec** (this version)' if name == 'llmrec' else name} | {row} |" in version.description, name

    # Same data again: an equal model does not beat the champion; the alias stays, a tag says why.
    second = train.run(settings, last, progress=False)
    assert not second["promoted"] and "does not beat champion v1" in second["reason"]
    assert str(client.get_model_version_by_alias("llmrec", "champion").version) == "1"
    assert client.get_model_version("llmrec", second["version"]).tags["promotion"].startswith("not promoted")
    assert str(client.get_model_version_by_alias("llmrec", "challenger").version) == second["version"]
    refused = client.get_model_version("llmrec", second["version"]).description
    assert refused.startswith(f"**Not promoted**: {second['reason']}") and "| champion v1, re-evaluated | " in refused
    # The same lake read again: the same dataset digests.
    again = client.get_run(second["run_id"]).inputs.dataset_inputs
    assert {(i.dataset.name, i.dataset.digest) for i in again} == {(d.name, d.digest) for d in inputs.values()}

    # The registered model scores (history, candidate) rows, cold candidates from their text.
    model = mlflow.pyfunc.load_model(tracking.model_uri("llmrec", alias="champion"))
    snap = load_snapshot(settings, last)
    ids = list(snap.item_ids)
    request = pd.DataFrame({
        "history": [ids[:3], ids[:3], [], ids[:2]],
        "item_id": [ids[4], "unknown", ids[5], "brand-new"],
        "item_text": [None, None, None, "Galaxy story 99. Genres: Space."],
    })
    scores = model.predict(request)["score"].to_numpy()
    assert ((scores[[0, 2, 3]] > 0) & (scores[[0, 2, 3]] < 1)).all() and np.isnan(scores[1])


def test_registered_model_has_seen_the_newest_behaviour(trained):
    from llmrec_core.registry.bundle import load_bundle

    home, last, settings, first = trained
    bundle = load_bundle(tracking.download_bundle(settings, first["version"], home / "dl"))
    snap = load_snapshot(settings, last)
    window_start = snap.end_ts - settings.train.validation_days * 86_400
    newest = np.unique(snap.events.item[snap.events.ts >= window_start])
    only_new = [i for i in newest if not (snap.events.item[snap.events.ts < window_start] == i).any()]
    assert only_new, "the toy lake has items first seen in the validation window"
    ids = bundle.model["item_ids"]
    # The serving model was refit on everything up to D: it knows the window's new items by ID.
    assert all(bool(bundle.model["known"][ids.index(snap.item_ids[i])]) for i in only_new)
    # The gate model was trained before the window and does not.
    assert not any(bool(bundle.gate["known"][ids.index(snap.item_ids[i])]) for i in only_new)
    assert bundle.meta["ds"] == str(last) and bundle.meta["best_epoch"] >= 1
    # Its click scaling is fitted for its own logits on the validation window, not carried over
    # from the gate model, whose logits differ.
    from llmrec_core.evaluation import calibrate
    from llmrec_core.recommenders.portable import restore

    served, gate = restore(bundle.model, snap, "cpu"), restore(bundle.gate, snap, "cpu")
    # Both carry the cold_taste_weight chosen on the validation window's new items, logged with its trials.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    logged = next(r for r in client.search_runs([client.get_experiment_by_name("llmrec").experiment_id])
                  if r.data.tags.get("model") == "llmrec" and r.data.tags.get("mlflow.parentRunId") == first["run_id"]).data.metrics
    assert served.model_settings.cold_taste_weight == gate.model_settings.cold_taste_weight == logged["val_cold_taste_weight"]
    trials = {w: logged[f"val_cold_taste_{w:g}_recall_2_warm_users"] for w in settings.evaluation.cold_taste_weight_grid}
    assert logged["val_cold_taste_users"] >= 1 and len(set(trials.values())) > 1 and settings.model.cold_taste_weight not in trials
    assert logged["val_cold_taste_weight"] == max(trials, key=lambda w: (trials[w], -list(trials).index(w)))
    assert bundle.meta["cold_taste_weight"] == logged["val_cold_taste_weight"]
    # And the audience chosen on the same new items, after the click scaling: click, or share with an activity weight.
    audiences = {"click": logged["val_audience_click_recall_2"]} | {
        f"share_{w:g}": logged[f"val_audience_share_{w:g}_recall_2"] for w in settings.evaluation.audience_activity_grid}
    best = max(audiences, key=lambda c: (audiences[c], -list(audiences).index(c)))
    assert len(set(audiences.values())) > 1  # a real choice: the configured (share, 3) cannot come back by a tie
    chosen = ("click", 3.0) if best == "click" else ("share", float(best.split("_")[1]))  # click keeps the configured weight
    for model in (served, gate):
        assert (model.model_settings.audience, model.model_settings.audience_activity_weight) == chosen
    assert (bundle.meta["audience"], bundle.meta["audience_activity_weight"]) == chosen
    assert logged["val_audience_share"] == float(chosen[0] == "share") and logged["val_audience_items"] >= 1
    _, ctr, _ = train.validation_splits(snap, settings.train.validation_days)
    assert served.calibration == pytest.approx(calibrate(served, ctr, snap), rel=1e-4)
    assert gate.calibration == pytest.approx(calibrate(gate, ctr, snap), rel=1e-4)
    assert served.calibration != pytest.approx(gate.calibration, rel=1e-3)


def test_mlflow_models_predict_cli(trained, tmp_path):
    home, last, settings, first = trained
    snap = load_snapshot(settings, last)
    ids = list(snap.item_ids)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"dataframe_records": [{"history": ids[:3], "item_id": ids[3]}]}))
    out = tmp_path / "out.json"
    env = {"MLFLOW_TRACKING_URI": settings.tracking_uri, "PATH": f"{sys.prefix}/bin"}
    proc = subprocess.run(
        [f"{sys.prefix}/bin/mlflow", "models", "predict", "-m", tracking.model_uri("llmrec", alias="champion"),
         "-i", str(request), "-o", str(out), "-t", "json", "--env-manager", "local"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    score = result["predictions"][0]["score"]
    assert 0 < score < 1


def test_torchrun_two_processes_train_in_step_and_register_once(toy_home, tmp_path):
    import torch

    from llmrec_core.models.two_tower import TwoTower, TwoTowerConfig

    home, last = toy_home
    (home / "llmrec.yaml").write_text(
        'model: {encoder: "random:32x2", dim: 16, max_len: 8, max_text_tokens: 16}\n'
        "train: {epochs: 2, patience: 2, batch_size: 16, negatives: 16, validation_days: 5}\n"
        'rerank: {enabled: "off"}\nevaluation: {als_rank: 4, als_iterations: 2, tune_baselines: false}\n'
    )
    proc = subprocess.run(
        [f"{sys.prefix}/bin/torchrun", "--standalone", "--nproc_per_node", "2", "-m", "jobs.train",
         "--ds", str(last), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("registered llmrec version 1") == 1  # only the first process records
    ckpt = home / "models" / "checkpoints" / f"ds={last}"
    first, second = tensorfile.load(ckpt / "llmrec.rank0"), tensorfile.load(ckpt / "llmrec.rank1")
    a, b = first["model"], second["model"]
    # Each process trained on its own shard: identical weights only if gradients were averaged.
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(int(first["config"]["train.seed"]))
    init = torch.nn.ModuleList([TwoTower(TwoTowerConfig(**first["config"]["cfg"]))]).state_dict()
    assert set(a) == set(init)  # the plain module's keys, no wrapper's prefix
    assert torch.equal(a["0.items.text_to_id"], init["0.items.text_to_id"])  # a buffer: the same start
    moved = [k for k in init if not torch.equal(a[k], init[k])]
    assert {"0.bias", "0.items.id_emb.weight"} <= set(moved), moved


def _tiny_net():
    import torch

    torch.manual_seed(0)
    return torch.nn.ModuleDict({"head": torch.nn.Linear(4, 1), "extra": torch.nn.Linear(4, 1)})


def _tiny_loss(net, batch):
    x, y, use_extra = batch
    loss = (net["head"](x).squeeze(-1) - y).pow(2).mean()
    if use_extra:  # a parameter only one process uses in a step
        loss = loss + net["extra"](x).pow(2).mean()
    return loss


def _tiny_shards(steps: int = 2) -> list[list[tuple]]:
    """Per process, one batch per epoch; only the second process uses ``extra``."""
    import torch

    g = torch.Generator().manual_seed(1)
    return [[(torch.randn(6, 4, generator=g) * 3, torch.randn(6, generator=g), rank == 1) for _ in range(steps)]
            for rank in range(2)]


def _train_shard(rank: int, world: int, out: Path) -> None:
    """One process of the test below: ``run_epochs`` with SGD on this process's shard."""
    import torch

    from llmrec_core.training import run_epochs

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=world)
    try:
        net, shard = _tiny_net(), _tiny_shards()[rank]
        run_epochs(net, torch.optim.SGD(net.parameters(), lr=0.05), lambda epoch: [shard[epoch - 1]], lambda b: _tiny_loss(net, b),
                   epochs=len(shard), config={"test": "ddp"}, progress=False, checkpoint=out / f"rank{rank}")
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_step_with_the_average_of_their_gradients(tmp_path):
    """Two gloo processes, each on its own shard, end where one process ends stepping with the
    mean of both shards' gradients (clipped, as the loop does): the update is really averaged."""
    import torch

    torch.multiprocessing.spawn(_train_shard, args=(2, tmp_path), nprocs=2, join=True)
    a, b = (tensorfile.load(tmp_path / f"rank{r}")["model"] for r in range(2))
    ref, shards = _tiny_net(), _tiny_shards()
    init = {k: v.clone() for k, v in ref.state_dict().items()}
    opt = torch.optim.SGD(ref.parameters(), lr=0.05)
    for step in range(len(shards[0])):
        grads = []
        for shard in shards:
            ref.zero_grad(set_to_none=True)
            _tiny_loss(ref, shard[step]).backward()
            grads.append({n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in ref.named_parameters()})
        for n, p in ref.named_parameters():
            p.grad = (grads[0][n] + grads[1][n]) / 2
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 5.0)
        opt.step()
    assert set(a) == set(b) == set(init)  # the plain module's keys in the checkpoint
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(not torch.equal(a[k], init[k]) for k in a)  # ``extra`` too, though only one process used it
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(a[k], v, rtol=1e-5, atol=1e-6)


def test_cli_train_without_a_lake_prints_one_error_line(home, capsys):
    from llmrec_core.cli import main

    assert main(["train", "--ds", "2024-01-20"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no items snapshot for 2024-01-20") and "llmrec etl" in err[-1]
    assert main(["train", "--ds", "yesterday"]) == 1
    assert "not a day: 'yesterday'" in capsys.readouterr().err
