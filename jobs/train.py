"""Train the LLM click-through model for day D, compare it with every baseline, register it.

    python -m jobs.train --ds 1998-04-22 [--finetune none|lora|full] [--epochs N] [--config FILE]
    torchrun --nproc_per_node 4 -m jobs.train --ds ...      # several GPUs, same code

Top to bottom (:func:`run`): settings -> lake snapshot of D -> validation split (the window
before D) -> one fit-and-evaluate loop over every recommender of the factory (the model with
early stopping on validation NDCG@10, a checkpoint per epoch so a killed run resumes; its
ablations; the baselines; then the cross-encoder re-ranker over the model) -> refit on
everything up to D for the chosen epoch count -> the promotion gate (``registry.gate``) ->
the bundle registered in MLflow (``registry.bundle``) -> champion or not (a refused version
becomes ``challenger``), and each version's description: the gate's decision and table.
"""

from __future__ import annotations

import datetime
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np

from jobs.common import ds_parser, guarded, run_main
from llmrec_core import plots, tuning
from llmrec_core.data import protocols
from llmrec_core.data.snapshot import load_snapshot
from llmrec_core.days import resolve_day
from llmrec_core.errors import DataQualityError, MissingInputError
from llmrec_core.evaluation import calibrate, evaluate, pair_scores
from llmrec_core.io import lake, tracking
from llmrec_core.metrics import reliability
from llmrec_core.recommenders import zoo
from llmrec_core.recommenders.base import Recommender
from llmrec_core.recommenders.llm import LlmRecommender, pick_device
from llmrec_core.recommenders.reranked import Reranked
from llmrec_core.registry import bundle, gate
from llmrec_core.registry.bundle import Bundle
from llmrec_core.settings import Settings, load_settings, redact_url

log = logging.getLogger("jobs.train")
# The model settings each fit chooses on its validation window, which the refit serves with.
CHOSEN = ("cold_taste_weight", "audience", "audience_activity_weight")


def validation_cutoff(snap, days: int) -> int:
    """Where the validation window of the last ``days`` days of the snapshot starts."""
    return snap.end_ts - days * protocols.DAY


def validation_splits(snap, days: int) -> tuple[protocols.EvalSplit, protocols.EvalSplit, protocols.EvalSplit]:
    """The validation window's lists, labelled pairs, and new items (what ``cold_taste_weight`` is chosen on)."""
    cutoff = validation_cutoff(snap, days)
    return (protocols.temporal(snap.events, snap.n_users, cutoff, days),
            protocols.ctr(snap.events, snap.n_users, cutoff, days),
            protocols.cold_items(snap.events, snap.n_users, snap.n_items, cutoff, days))


@dataclass
class Round:
    """One training run's shared state: the data, the validation splits, what was measured."""

    settings: Settings
    snap: object
    ranking: protocols.EvalSplit
    ctr: protocols.EvalSplit
    cold: protocols.EvalSplit
    tags: dict[str, str]
    checkpoints: Path
    suffix: str = ""
    results: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    vectors: np.ndarray | None = None  # language-model text vectors of every item (for diversity)
    reliability: dict[str, list[tuple[float, float, int]]] = field(default_factory=dict)
    baselines: dict[str, tuning.Tuned] = field(default_factory=dict)  # tuned on validation, with their trials
    fitted: dict[str, Recommender] = field(default_factory=dict)  # every model fitted on the validation split


def start_processes(settings: Settings) -> tuple[Settings, int, bool]:
    """Under torchrun, join the process group that training's DistributedDataParallel averages
    gradients over; only the first process records anything."""
    rank = int(os.environ.get("RANK", "0"))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        import torch.distributed as dist

        cuda = pick_device(settings.train.device).type == "cuda"
        # Long timeout: the first process fits baselines and the re-ranker while the others wait.
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=6))
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if rank:
        settings = settings.model_copy(deep=True)
        settings.tracking.tracking_uri = f"sqlite:///{tempfile.mkdtemp()}/mlflow-rank{rank}.db"
    return settings, rank, int(os.environ.get("WORLD_SIZE", "1")) > 1


def fit_and_evaluate(rec: Recommender, r: Round) -> None:
    """Fit one recommender on the validation split's training events, measure it, log it as a
    nested MLflow run."""
    metric, ks, days = r.settings.evaluation.metric, r.settings.evaluation.ks, r.settings.scoring.popular_days
    started = time.perf_counter()
    with tracking.run(rec.name, tags={**r.tags, "model": rec.name}, params=rec.params(), nested=True):
        if isinstance(rec, LlmRecommender):
            rec.fit(r.snap, r.ranking.train, checkpoint=r.checkpoints / f"{rec.name}{r.suffix}",
                    validate=lambda: evaluate(rec, r.ranking, r.snap, ks, r.vectors, fallback_days=days)[metric],
                    on_epoch=lambda e, row: tracking.log_metrics(
                        {"epoch_train_loss": row["train_loss"], f"epoch_val_{metric}": row.get("val_metric", float("nan"))}, step=e))
            r.curves[rec.name] = rec.result_.curves
            if r.vectors is None:
                r.vectors = _vectors(rec)
            if rec.model_settings.use_text:  # new items ranked with the users' taste: the weight the window's new items choose
                ev = r.settings.evaluation
                chosen = tuning.choose_cold_taste(rec, r.snap, r.cold, ev.cold_taste_weight_grid, ev.cold_taste_k)
                tracking.log_metrics(chosen.metrics(), prefix="val_")
            # sigmoid(score) is p(click): Platt scaling on the validation window's labelled pairs.
            rec.calibration = calibrate(rec, r.ctr, r.snap)
            tracking.log_metrics({"calibration_a": rec.calibration[0], "calibration_c": rec.calibration[1]})
            # An item's audience: by p(click) or by share, as the window's new items choose (after
            # the scaling, which the click audience ranks by).
            ev = r.settings.evaluation
            tracking.log_metrics(tuning.choose_audience(rec, r.snap, r.cold, ev.audience_activity_grid, ev.cold_taste_k).metrics(),
                                 prefix="val_")
        else:
            rec.fit(r.snap, r.ranking.train)
        r.seconds[rec.name] = time.perf_counter() - started
        r.fitted[rec.name] = rec
        # The re-ranker changes lists, not click probabilities: ranked only.
        splits = [r.ranking] if isinstance(rec, Reranked) else [r.ranking, r.ctr]
        r.results[rec.name] = {k: v for split in splits for k, v in evaluate(rec, split, r.snap, ks, r.vectors, fallback_days=days).items()}
        tracking.log_metrics(r.results[rec.name], prefix="val_")
        if isinstance(rec, LlmRecommender):
            tracking.log_metrics({"best_epoch": rec.result_.best_epoch})
            _, _, labels = r.ctr.pairs
            probs = 1.0 / (1.0 + np.exp(-pair_scores(rec, r.ctr, r.snap).astype(np.float64)))
            r.reliability[rec.name] = reliability(labels, probs)
        if isinstance(rec, Reranked):
            tracking.log_metrics({"train_pairs": rec.n_pairs_, "train_loss": rec.losses_[-1]})


def tuned_baselines(r: Round) -> list[Recommender]:
    """Every baseline with the hyper-parameters that did best on the validation split, as the
    model's epoch count is chosen there (``evaluation.tune_baselines``)."""
    ev = r.settings.evaluation
    out = []
    for t in tuning.tune_baselines(r.settings, r.snap, r.ranking, ev.ks, ev.metric):
        r.baselines[t.name] = t
        out.append(t.build())
    return out


def refit(model: LlmRecommender, r: Round, progress: bool) -> LlmRecommender:
    """The serving model: the product model refit on everything up to D for the chosen epochs."""
    if not r.settings.train.refit:
        return model
    serving = zoo.sequence_models(r.settings, progress=progress, ablations=False)[0]
    # What validation chose: the cold-taste weight and the audience.
    serving.model_settings = serving.model_settings.model_copy(update=_chosen(model))
    started = time.perf_counter()
    serving.fit(r.snap, r.snap.events, epochs=model.result_.best_epoch, checkpoint=r.checkpoints / f"llmrec-refit{r.suffix}")
    # Platt scaling again, for the refit's own logits, on the same validation window (now inside
    # its training data): the validation model's scaling does not carry over to a refit
    # (benchmarks/RESULTS.md, "The refit and the click model").
    serving.calibration = calibrate(serving, r.ctr, r.snap)
    r.seconds["llmrec_refit"] = time.perf_counter() - started
    return serving


def refit_baseline(name: str, r: Round) -> Recommender:
    """A baseline that won validation, with its tuned values, refit on everything up to D."""
    serving = r.baselines[name].build()
    started = time.perf_counter()
    serving.fit(r.snap, r.snap.events)
    r.seconds[f"{name}_refit"] = time.perf_counter() - started
    return serving


def log_round(r: Round, decisions: list[tuple[str, gate.GateDecision]], champion: float | None) -> None:
    metric, ks = r.settings.evaluation.metric, r.settings.evaluation.ks
    tracking.log_figure(plots.metrics_by_model(r.results, [metric, f"recall_{max(ks)}", "auc"], f"validation, ds={r.snap.ds}"),
                        "plots/metrics_by_model.png")
    tracking.log_figure(plots.training_curves(r.curves, metric), "plots/training_curves.png")
    tracking.log_figure(plots.reliability_diagram(r.reliability, f"click probabilities, validation, ds={r.snap.ds}"),
                        "plots/reliability.png")
    tracking.log_dict({"results": r.results, "decisions": {name: d.reason for name, d in decisions}, "baseline_tuning": {name: t.trials for name, t in r.baselines.items() if t.trials}},
                      "results.json")
    if champion is not None:
        tracking.log_metrics({f"champion_{metric}": champion})
    tracking.log_metrics({f"fit_seconds.{k}": v for k, v in r.seconds.items()})
    log.info("fit seconds: %s", {k: round(v, 1) for k, v in r.seconds.items()})


def log_inputs(r: Round) -> None:
    """The lake tables the run read, as MLflow dataset inputs: the snapshot of D for training (the
    registered model is refit on all of it) and its last ``train.validation_days`` for validation."""
    tracking.log_snapshot_inputs(r.settings, r.snap, "training")
    tracking.log_snapshot_inputs(r.settings, r.snap, "validation", since_ts=validation_cutoff(r.snap, r.settings.train.validation_days))


def run(settings: Settings, ds: date, progress: bool = True) -> dict:
    settings, rank, distributed = start_processes(settings)
    leader, metric = rank == 0, settings.evaluation.metric
    snap = load_snapshot(settings, ds)
    ranking, ctr, cold = validation_splits(snap, settings.train.validation_days)
    log.info("validation window: %s", {**ranking.info, **ctr.info})
    if not len(ranking.users):
        raise MissingInputError(f"no positives in the {settings.train.validation_days} days before {ds}: nothing to validate on")
    tracking.setup(settings)
    tags = {"ds": str(ds), "git_commit": tracking.git_commit(), **{f"rows.{k}": str(v) for k, v in snap.counts().items()},
            "validation_users": str(len(ranking.users)), "validation_pairs": str(ctr.info["pairs"])}
    r = Round(settings, snap, ranking, ctr, cold, tags, lake.partition(settings.models_dir / "checkpoints", ds), f".rank{rank}" if distributed else "")
    with tracking.run(f"train {ds}", tags={**tags, "kind": "training"}, params=settings.model_dump(mode="json")) as parent:
        log_inputs(r)
        models = zoo.sequence_models(settings, progress=progress and leader)
        model: LlmRecommender = models[0]
        # The other processes of a torchrun only help train the sequence models.
        for rec in models + (tuned_baselines(r) if leader else []):
            fit_and_evaluate(rec, r)
        if model.result_.best_epoch < 1:
            raise DataQualityError(f"validation {metric} was never a number: nothing to choose the epoch count by")
        reranker = zoo.reranker(settings, model) if leader else None
        if reranker is not None:
            fit_and_evaluate(reranker, r)
        gate_export, serving = model.export(), refit(model, r, progress)
        if not leader:
            return {}
        gated, judged = [b for b in r.baselines if b in settings.tracking.gate_baselines], []

        def judge():
            judged.append(gate.judge(settings, r.results, zoo.MODEL, gated, snap, ranking, r.vectors))
            return judged[-1]

        decisions, champion, compared = judge()
        log_round(r, decisions, champion)
        versions = register_versions(r, decisions, Bundle(serving.export(), gate_export, reranker.head() if reranker else None,
                                                          _meta(r, zoo.MODEL, parent, best_epoch=model.result_.best_epoch,
                                                                **_chosen(serving))), parent)
        versions = settle(r, versions, decisions, compared, judge)
        describe_versions(r, versions, gated, *judged[-1][1:])
    return {**versions[0], "versions": versions, "results": r.results, "run_id": parent, "fit_seconds": r.seconds,
            "champion": next((v["version"] for v in versions if v["promoted"]), None)}


def register_versions(r: Round, decisions: list[tuple[str, gate.GateDecision]], product: Bundle, parent: str) -> list[dict]:
    """Register the language model's bundle and, when a baseline won validation, that baseline
    refit on everything up to D (promoted or refused afterwards, by :func:`settle`)."""
    versions = []
    for name, _ in decisions:
        made = product if name == zoo.MODEL else Bundle(refit_baseline(name, r).export(), r.fitted[name].export(), None,
                                                        _meta(r, name, parent))
        versions.append({"model": name, "version": register_version(r, made, name, parent)})
    return versions


ATTEMPTS = 3


def settle(r: Round, versions: list[dict], decisions: list[tuple[str, gate.GateDecision]], compared: str | None, judge) -> list[dict]:
    """Promote or refuse each registered version. The promotion is a compare-and-set on the
    champion the decision was made against: when another run moved the champion meanwhile, the
    gate judges again against the new one instead of overwriting it."""
    for attempt in range(1, ATTEMPTS + 1):
        verdict = dict(decisions)
        try:
            for v in versions:
                decision = verdict.get(v["model"]) or gate.GateDecision(False, "not a candidate when judged again")
                if decision.promote:
                    tracking.promote(r.settings, v["version"], decision.reason, expected=compared)
                else:
                    tracking.refuse(r.settings, v["version"], decision.reason)
                v.update(promoted=decision.promote, reason=decision.reason)
                log.info("version %s (%s): %s", v["version"], v["model"], decision.reason)
            return versions
        except tracking.ChampionMoved as moved:
            if attempt == ATTEMPTS:
                raise
            log.warning("%s: judging again against the new champion", moved)
            decisions, _, compared = judge()
    return versions


def describe_versions(r: Round, versions: list[dict], gated: list[str], champion: float | None, compared: str | None) -> None:
    """Each registered version's registry description: the gate's decision and the validation
    table of the judgement that decided it (the last one, when the champion moved meanwhile)."""
    for v in versions:
        text = gate.report(r.settings, r.results, v["model"], [zoo.MODEL, *gated], champion, compared,
                           gate.GateDecision(v["promoted"], v["reason"]))
        tracking.describe(r.settings, v["version"], text)


def _chosen(rec: LlmRecommender) -> dict:
    """The model settings validation chose (``CHOSEN``), as ``rec`` holds them."""
    return {k: getattr(rec.model_settings, k) for k in CHOSEN}


def _meta(r: Round, name: str, parent: str, **extra) -> dict:
    return {"ds": str(r.snap.ds), "model": name, "counts": r.snap.counts(), "validation": r.results[name],
            "settings": r.settings.model_dump(mode="json"), "parent_run_id": parent, **extra}


def register_version(r: Round, made: Bundle, name: str, parent: str) -> str:
    """Register one bundle as a new version (not yet promoted or refused)."""
    metric = r.settings.evaluation.metric
    with tracking.run(f"registered {name}", tags={**r.tags, "model": f"{name}_registered"}, nested=True):
        # With day D's catalogue: the served pyfunc recommends as the nightly job does (titles, filters, fallback).
        return bundle.register(r.settings, replace(made, catalogue=bundle.catalogue(r.settings, r.snap)), _example(r.snap),
                               {**r.tags, "model": name, f"val_{metric}": f"{r.results[name][metric]:.5f}", "training_run": parent})


def _vectors(rec: LlmRecommender) -> np.ndarray:
    """Language-model text vectors of every item (model-independent, for diversity)."""
    return rec.item_text_.cpu().numpy() if rec.model_settings.use_text else np.eye(rec.snap_.n_items, 8, dtype=np.float32)


def _example(snap):
    from llmrec_core.registry.pyfunc import input_example

    return input_example(list(snap.item_ids[:5]))


def summary(out: dict, settings: Settings) -> str:
    """The validation table of a run, one row per model, and what happened to the version."""
    metric, k = settings.evaluation.metric, max(settings.evaluation.ks)
    cols = [metric, f"recall_{k}", f"recall_{k}_cold_users", "auc", "user_auc", "coverage_10"]
    lines = [f"{'model':16s}" + "".join(f"{c:>22s}" for c in cols)]
    for name, m in out["results"].items():
        lines.append(f"{name:16s}" + "".join(f"{m.get(c, float('nan')):>22.4f}" for c in cols))
    for v in out["versions"]:
        lines.append(f"registered {settings.tracking.registered_model} version {v['version']} ({v['model']}, "
                     f"{'promoted to ' + settings.tracking.champion_alias if v['promoted'] else 'not promoted'}): {v['reason']}")
    lines.append("fit seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in out["fit_seconds"].items()))
    lines.append(f"MLflow run {out['run_id']} in {redact_url(settings.tracking_uri)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = ds_parser("train", __doc__, "train on everything visible on this day", prog)
    parser.add_argument("--finetune", choices=["none", "lora", "full"], help="language model fine-tuning mode")
    parser.add_argument("--epochs", type=int, help="maximum epochs (early stopping still applies)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    def go():
        settings = load_settings(args.config)
        if args.finetune:
            settings.model.finetune = args.finetune
        if args.epochs:
            settings.train.epochs = args.epochs
        ds = resolve_day(args.ds, settings.raw_table("events"))
        # Under torchrun the first process holds the lock for the whole group.
        with guarded(settings, "train", [ds] if os.environ.get("RANK", "0") == "0" else []):
            out = run(settings, ds, progress=not args.no_progress)
        if out:
            print(summary(out, settings))
    return run_main(go)


if __name__ == "__main__":
    raise SystemExit(main())
