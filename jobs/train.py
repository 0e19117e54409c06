"""Train the LLM click-through model for day D, compare it with every baseline, register it.

    python -m jobs.train --ds 1998-04-22 [--finetune none|lora|full] [--epochs N] [--config FILE]
    torchrun --nproc_per_node 4 -m jobs.train --ds ...      # several GPUs, same code

Top to bottom: settings -> lake snapshot of D -> validation split (the window before D) ->
baselines and ablations on that split -> the model with early stopping on validation NDCG@10
(a checkpoint per epoch; a killed run resumes) -> the cross-encoder re-ranker -> refit on
everything up to D for the chosen epoch count -> register in MLflow -> promotion gate.
"""

from __future__ import annotations

import datetime
import logging
import os
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from jobs.common import ds_parser, run_main
from llmrec_core import plots
from llmrec_core.bundle import Bundle, save_bundle
from llmrec_core.data import protocols
from llmrec_core.data.snapshot import load_snapshot, resolve_day
from llmrec_core.errors import DataQualityError, MissingInputError
from llmrec_core.evaluation import evaluate
from llmrec_core.gate import GateDecision, decide
from llmrec_core.io import tracking
from llmrec_core.recommenders import zoo
from llmrec_core.recommenders.llm import LlmRecommender, pick_device
from llmrec_core.recommenders.portable import export_llm
from llmrec_core.recommenders.reranked import Reranked
from llmrec_core.settings import Settings, load_settings

log = logging.getLogger("jobs.train")


def validation_splits(snap, days: int) -> tuple[protocols.EvalSplit, protocols.EvalSplit]:
    cutoff = snap.end_ts - days * protocols.DAY
    return (protocols.temporal(snap.events, snap.n_users, cutoff, days),
            protocols.ctr(snap.events, snap.n_users, cutoff, days))


def evaluate_all(rec, ranking, ctr, snap, settings: Settings, item_vectors) -> dict[str, float]:
    ks = settings.evaluation.ks
    return {**evaluate(rec, ranking, snap, ks, item_vectors), **evaluate(rec, ctr, snap, ks, item_vectors)}


def champion_metric(settings: Settings, snap, ranking, item_vectors) -> tuple[float | None, str | None, str | None]:
    """The current champion's gate metric on this validation split, its version, or why not."""
    from llmrec_core.bundle import load_bundle
    from llmrec_core.recommenders.portable import restore_llm

    current = tracking.champion(settings)
    if current is None:
        return None, None, None
    with tempfile.TemporaryDirectory() as tmp:
        bundle = load_bundle(tracking.download_bundle(settings, current.version, Path(tmp)))
    if date.fromisoformat(bundle.meta["ds"]) > snap.ds:
        return None, current.version, (f"champion v{current.version} was trained on data up to {bundle.meta['ds']}, "
                                       f"after this run's day {snap.ds}: not comparable")
    rec = restore_llm(bundle.gate, snap, settings.train.device)
    value = evaluate(rec, ranking, snap, settings.evaluation.ks, item_vectors)[settings.evaluation.metric]
    return value, current.version, None


def run(settings: Settings, ds: date, progress: bool = True) -> dict:
    rank = int(os.environ.get("RANK", "0"))
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        import torch.distributed as dist

        cuda = pick_device(settings.train.device).type == "cuda"
        # Long timeout: the first process fits baselines and the re-ranker while the others wait.
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=6))
        if cuda:
            import torch

            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    leader = rank == 0
    if not leader:  # only the first process of a torchrun records anything
        settings = settings.model_copy(deep=True)
        settings.tracking.tracking_uri = f"sqlite:///{tempfile.mkdtemp()}/mlflow-rank{rank}.db"
    metric, ks = settings.evaluation.metric, settings.evaluation.ks
    snap = load_snapshot(settings, ds)
    ranking, ctr = validation_splits(snap, settings.train.validation_days)
    log.info("validation window: %s", {**ranking.info, **ctr.info})
    if not len(ranking.users):
        raise MissingInputError(f"no positives in the {settings.train.validation_days} days before {ds}: nothing to validate on")
    checkpoints = settings.models_dir / "checkpoints" / f"ds={ds}"
    tracking.setup(settings)
    results: dict[str, dict[str, float]] = {}
    curves: dict[str, list[dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    tags = {"ds": str(ds), "git_commit": tracking.git_commit(), **{f"rows.{k}": str(v) for k, v in snap.counts().items()},
            "validation_users": str(len(ranking.users)), "validation_pairs": str(ctr.info["pairs"])}
    with tracking.run(f"train {ds}", tags={**tags, "kind": "training"}, params=settings.model_dump(mode="json")) as parent:
        models = zoo.sequence_models(settings, progress=progress and leader)
        main: LlmRecommender = models[0]
        suffix = f".rank{rank}" if distributed else ""
        for rec in models:
            with tracking.run(rec.name, tags={**tags, "model": rec.name}, params=rec.params(), nested=True):
                started = time.perf_counter()
                rec.fit(snap, ranking.train, checkpoint=checkpoints / f"{rec.name}{suffix}.pt",
                        validate=lambda r=rec: evaluate(r, ranking, snap, ks, _vectors(main))[metric],
                        on_epoch=lambda e, row: tracking.log_metrics(
                            {"epoch_train_loss": row["train_loss"], f"epoch_val_{metric}": row.get("val_metric", float("nan"))}, step=e))
                curves[rec.name] = rec.result_.curves
                seconds[rec.name] = time.perf_counter() - started
                results[rec.name] = evaluate_all(rec, ranking, ctr, snap, settings, _vectors(main))
                tracking.log_metrics(results[rec.name], prefix="val_")
                tracking.log_metrics({"best_epoch": rec.result_.best_epoch})
        if main.result_.best_epoch < 1:
            raise DataQualityError(f"validation {metric} was never a number: nothing to choose the epoch count by")
        gate_export = export_llm(main)
        if settings.train.refit:
            serving = zoo.sequence_models(settings, progress=progress, ablations=False)[0]
            started = time.perf_counter()
            serving.fit(snap, snap.events, epochs=main.result_.best_epoch, checkpoint=checkpoints / f"llmrec-refit{suffix}.pt")
            seconds["llmrec_refit"] = time.perf_counter() - started
        else:
            serving = main
        if leader:  # the other processes of a torchrun only help train the sequence models
            for rec in zoo.baselines(settings):
                started = time.perf_counter()
                rec.fit(snap, ranking.train)
                seconds[rec.name] = time.perf_counter() - started
                results[rec.name] = evaluate_all(rec, ranking, ctr, snap, settings, _vectors(main))
                with tracking.run(rec.name, tags={**tags, "model": rec.name}, params=rec.params(), nested=True):
                    tracking.log_metrics(results[rec.name], prefix="val_")
            reranker = None
            if settings.rerank.enabled != "off":
                reranker = Reranked(main, settings.rerank, settings.text, settings.model.encoder, main.device, settings.train.seed)
                started = time.perf_counter()
                reranker.fit(snap, ranking.train)
                seconds[reranker.name] = time.perf_counter() - started
                results[reranker.name] = evaluate(reranker, ranking, snap, ks, _vectors(main))
                with tracking.run(reranker.name, tags={**tags, "model": reranker.name}, params=reranker.params(), nested=True):
                    tracking.log_metrics(results[reranker.name], prefix="val_")
                    tracking.log_metrics({"train_pairs": reranker.n_pairs_, "train_loss": reranker.losses_[-1]})
        if not leader:
            return {}
        champ_value, champ_version, note = champion_metric(settings, snap, ranking, _vectors(main))
        candidate = results[zoo.MODEL][metric]
        decision: GateDecision = decide(metric, candidate, results["popularity"][metric], champ_value,
                                        settings.tracking.promote_margin, champ_version, note)
        tracking.log_figure(plots.metrics_by_model(results, [metric, f"recall_{max(ks)}", "auc"], f"validation, ds={ds}"), "plots/metrics_by_model.png")
        tracking.log_figure(plots.training_curves(curves, metric), "plots/training_curves.png")
        tracking.log_dict({"results": results, "decision": decision.reason}, "results.json")
        if champ_value is not None:
            tracking.log_metrics({f"champion_{metric}": champ_value})
        tracking.log_metrics({f"fit_seconds.{k}": v for k, v in seconds.items()})
        log.info("fit seconds: %s", {k: round(v, 1) for k, v in seconds.items()})
        meta = {"ds": str(ds), "counts": snap.counts(), "validation": results[zoo.MODEL], "best_epoch": main.result_.best_epoch,
                "settings": settings.model_dump(mode="json"), "parent_run_id": parent}
        with tempfile.TemporaryDirectory() as tmp:
            bundle_dir = save_bundle(Path(tmp) / "bundle", Bundle(
                export_llm(serving), gate_export,
                {"state": {k: v.cpu() for k, v in reranker.model_.state_dict().items()}, "encoder": reranker.encoder,
                 "settings": settings.rerank.model_dump()} if reranker is not None else None, meta))
            with tracking.run("registered model", tags={**tags, "model": "llmrec_registered"}, nested=True):
                version = tracking.register_bundle(bundle_dir, settings, _example(snap), {**tags, f"val_{metric}": f"{candidate:.5f}", "training_run": parent})
        if decision.promote:
            tracking.promote(settings, version, decision.reason)
        else:
            tracking.refuse(settings, version, decision.reason)
        log.info("version %s: %s", version, decision.reason)
    return {"version": version, "promoted": decision.promote, "reason": decision.reason, "results": results,
            "run_id": parent, "fit_seconds": seconds}


def _vectors(rec: LlmRecommender) -> np.ndarray:
    """Language-model text vectors of every item (model-independent, for diversity)."""
    return rec.item_text_.cpu().numpy() if rec.model_settings.use_text else np.eye(rec.snap_.n_items, 8, dtype=np.float32)


def _example(snap):
    from llmrec_core.io.pyfunc import input_example

    return input_example(list(snap.item_ids[:5]))


def summary(out: dict, settings: Settings) -> str:
    """The validation table of a run, one row per model, and what happened to the version."""
    metric, k = settings.evaluation.metric, max(settings.evaluation.ks)
    cols = [metric, f"recall_{k}", f"recall_{k}_cold_users", "auc", "user_auc", "coverage_10"]
    lines = [f"{'model':16s}" + "".join(f"{c:>22s}" for c in cols)]
    for name, m in out["results"].items():
        lines.append(f"{name:16s}" + "".join(f"{m.get(c, float('nan')):>22.4f}" for c in cols))
    lines.append(f"registered {settings.tracking.registered_model} version {out['version']} "
                 f"({'promoted to ' + settings.tracking.champion_alias if out['promoted'] else 'not promoted'}): {out['reason']}")
    lines.append("fit seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in out["fit_seconds"].items()))
    lines.append(f"MLflow run {out['run_id']} in {settings.tracking_uri}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = ds_parser("train", __doc__, "train on everything visible on this day")
    parser.add_argument("--finetune", choices=["none", "lora", "full"], help="language model fine-tuning mode")
    parser.add_argument("--epochs", type=int, help="maximum epochs (early stopping still applies)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    def go():
        settings = load_settings(args.config)
        if args.finetune:
            settings.model.finetune = args.finetune
        if args.epochs:
            settings.train.epochs = args.epochs
        out = run(settings, resolve_day(args.ds, settings), progress=not args.no_progress)
        if out:
            print(summary(out, settings))
    return run_main(go)


if __name__ == "__main__":
    raise SystemExit(main())
