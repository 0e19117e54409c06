"""Every named model under every named protocol on one snapshot: the comparison that
``llmrec evaluate`` prints and logs to MLflow and that ``benchmarks/quality.py`` records.

Both run :func:`run`, so a number of one is a number of the other. Protocols
(docs/evaluation.md) cut the snapshot where a :class:`Dataset` says:

- ``loo``: leave-last-out; sequence models stop early on ``loo_valid`` and treat every
  interaction as a target.
- ``temporal``, ``ctr``: training before the cutoff, the window after it. Sequence models pick
  their epoch count on [cutoff - window, cutoff) with training before that, the text models their
  ``model.cold_taste_weight`` on that window's new items, are calibrated (Platt scaling) on that
  window's labelled pairs, choose ``model.audience`` on its new items, and are refit on everything
  before the cutoff, as the training job does.
- ``cold_items``: the same cutoff and its own window. ``llmrec_no_cold_map`` is the same fitted
  model without the text-to-ID map of items that have no interactions.

Baselines are tuned on the same validation split and refit on the test split's training events.
Sequence models run once per seed; results are the mean and standard deviation over seeds, with a
paired bootstrap 95% interval of the per-user NDCG@10 difference between ``llmrec`` and the best
other model. Models fitted elsewhere (a registered version) are measured beside them as they are.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import numpy as np
import torch

from llmrec_core.data import protocols
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.evaluation import FALLBACK_DAYS, calibrate, evaluate, per_user_ndcg
from llmrec_core.metrics import paired_bootstrap
from llmrec_core.models import encoder as lm
from llmrec_core.recommenders import zoo
from llmrec_core.recommenders.base import Recommender
from llmrec_core.recommenders.reranked import Reranked
from llmrec_core.settings import Settings
from llmrec_core.tuning import choose_audience, choose_cold_taste, tune_baselines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """Where the protocols cut a lake: its snapshot day, the temporal cutoff, the window after it
    (ctr and temporal) and the window of ``cold_items``. ``counts`` (events, users, items of the
    snapshot of ``ds``) recognise a known dataset in a user's lake."""

    title: str
    ds: date
    cutoff: datetime
    window: int = 30
    cold_window: int = 120
    counts: tuple[int, int, int] | None = None
    model: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def cutoff_ts(self) -> int:
        return int(self.cutoff.timestamp())


DATASETS = {
    # Only 11 items first appear in the 30-day window; every positive after the cutoff (to the end
    # of the data, 112 days) gives 86 cold items, enough to rank them against each other.
    "movielens-100k": Dataset("MovieLens-100K", date(1998, 4, 22), datetime(1998, 1, 1, tzinfo=timezone.utc),
                              counts=(100_000, 943, 1_682)),
    # `llmrec ingest synthetic --users 3000 --items 2000 --events 200000 --days 90 --start 2026-01-01 --seed 7`:
    # topics drive item text and drifting taste; the last 30 days are the window.
    "synthetic": Dataset("synthetic drifting-taste log", date(2026, 3, 31), datetime(2026, 3, 2, tzinfo=timezone.utc), 30, 30),
    # The same command with `--session-intent 0.5`: half of a session's events keep the topic it came for.
    # Its validation window (the 30 days before the cutoff, 3 seeds) prefers the smaller model:
    # NDCG@10 0.155 for dim 64 / max_len 50 against 0.140 for the defaults, which stop after 2 or 3
    # epochs there (benchmarks/RESULTS.md, "Intraday refresh quality ... with session intent").
    "synthetic-sessions": Dataset("synthetic drifting-taste log with session intent", date(2026, 3, 31),
                                  datetime(2026, 3, 2, tzinfo=timezone.utc), 30, 30, model={"dim": 64, "max_len": 50}),
}
PROTOCOLS = ["loo", "temporal", "cold_items", "ctr"]
COLUMNS = {
    "loo": ["hr_10", "ndcg_10", "mrr_10", "hr_20", "ndcg_20"],
    "temporal": ["recall_20", "ndcg_10", "precision_10", "f1_10", "ndcg_10_warm_users", "recall_20_warm_users",
                 "ndcg_10_cold_users", "recall_20_cold_users", "coverage_10", "novelty_10", "diversity_10", "popularity_bias_10"],
    "cold_items": ["cold_recall_10", "cold_recall_20", "cold_recall_20_warm_users", "cold_recall_20_cold_users",
                   "cold_random_recall_20", "cold_audience_recall_20",
                   "cold_active_audience_recall_20", "cold_returning_audience_recall_20"],
    "ctr": ["auc", "user_auc", "log_loss", "ece", "base_rate_log_loss", "item_share_auc", "item_share_log_loss"],
}
NO_MAP = "llmrec_no_cold_map"  # the same fitted model without the text-to-ID map of cold items
RERANK = f"{zoo.MODEL}_rerank"


def lake_settings(settings: Settings, data: Dataset, environ: Mapping[str, str] | None = None) -> Settings:
    """``settings`` with the model settings ``data`` chose on its own validation window. An
    environment override of the same setting (``LLMREC_MODEL__DIM``, ...) still wins, so a sweep
    over it stays possible."""
    environ = os.environ if environ is None else environ
    chosen = {k: v for k, v in data.model.items() if f"LLMREC_MODEL__{k.upper()}" not in environ}
    if not chosen:
        return settings
    out = settings.model_copy(deep=True)
    out.model = type(settings.model).model_validate({**settings.model.model_dump(), **chosen})
    log.info("model settings of %s, chosen on its validation window: %s", data.title, chosen)
    return out


def model_names(settings: Settings) -> list[str]:
    """Every model :func:`run` can fit: the product model, its ablations, the baselines, the re-ranker."""
    return [zoo.MODEL, *zoo.ABLATIONS, *zoo.baseline_grids(settings), RERANK]


def fit_sequence(rec, snap, inner_train, inner_valid, outer_train, metric, refit: bool, calibration_split=None,
                 cold_split=None, cold_grid=(), cold_k: int = 20, audience_grid=(), fallback_days: int = FALLBACK_DAYS):
    """Early stopping on the inner split, ``model.cold_taste_weight`` chosen over ``cold_grid`` on
    ``cold_split`` (the inner window's new items), Platt scaling on the inner labelled window,
    ``model.audience`` chosen over ``audience_grid`` on ``cold_split``, then (optionally) a refit
    on the outer training data for the chosen epochs, scaled again on that window: the training
    job's steps. The returned ``valid_<metric>`` is the inner split's at the chosen epoch: the
    figure to choose settings by, never the test split's."""
    rec.fit(snap, inner_train, validate=lambda: evaluate(rec, inner_valid, snap, [10], fallback_days=fallback_days)[metric])
    best, best_metric, inner_epochs = rec.result_.best_epoch, rec.result_.best_metric, rec.result_.epochs_run
    choices = {}
    if cold_split is not None and rec.model_settings.use_text:
        chosen = choose_cold_taste(rec, snap, cold_split, list(cold_grid), cold_k)
        choices = {"cold_taste_weight": chosen.weight, "cold_taste_users": chosen.users, "cold_taste_trials": chosen.trials}
    if calibration_split is not None:
        rec.calibration = calibrate(rec, calibration_split, snap)
    if cold_split is not None:  # after the scaling: the click audience is ranked by the calibrated p(click)
        chosen = choose_audience(rec, snap, cold_split, list(audience_grid), cold_k)
        choices |= {"audience": chosen.audience, "audience_activity_weight": chosen.weight, "audience_items": chosen.items,
                    "audience_trials": chosen.trials}
    if refit:
        calibration = rec.calibration
        rec.fit(snap, outer_train, epochs=best)
        # Scaled again for the refit's own logits, on the same window, as the training job does.
        rec.calibration = calibrate(rec, calibration_split, snap) if calibration_split is not None else calibration
    return {"best_epoch": best, "epochs_run": inner_epochs + (best if refit else 0), "calibration": list(rec.calibration),
            f"valid_{metric}": float(best_metric), **choices}


def tuned_baselines(settings, snap, valid, test_train, wanted) -> list[tuple[object, dict]]:
    """Each wanted baseline tuned on the validation split, then fitted on the test split's training events."""
    out = []
    for t in tune_baselines(settings, snap, valid, [10], "ndcg_10", wanted):
        start = time.perf_counter()
        rec = t.build().fit(snap, test_train)
        out.append((rec, {"fit_s": round(t.seconds + time.perf_counter() - start, 1), "params": t.params, "trials": t.trials}))
    return out


def splits_of(snap, which: list[str], data: Dataset) -> dict:
    """(validation, test) split of each protocol family: ``loo``, and ``temporal`` (which
    ``cold_items`` and ``ctr`` share)."""
    cutoff, window = data.cutoff_ts, data.window
    out = {}
    if "loo" in which:
        out["loo"] = protocols.loo(snap.events, snap.n_users)
    if set(which) & {"temporal", "cold_items", "ctr"}:
        inner = protocols.temporal(snap.events, snap.n_users, cutoff - window * protocols.DAY, window)
        out["temporal"] = (inner, protocols.temporal(snap.events, snap.n_users, cutoff, window))
    return out


def protocol_split(snap, p: str, test, data: Dataset):
    if p in ("loo", "temporal"):
        return test
    if p == "cold_items":
        return protocols.cold_items(snap.events, snap.n_users, snap.n_items, data.cutoff_ts, data.cold_window)
    return protocols.ctr(snap.events, snap.n_users, data.cutoff_ts, data.window)


def splits_of_info(snap, p: str, data: Dataset) -> dict:
    if p == "loo":
        return protocols.loo(snap.events, snap.n_users)[1].info
    return protocol_split(snap, p, protocols.temporal(snap.events, snap.n_users, data.cutoff_ts, data.window), data).info


def catalogue_vectors(settings: Settings, snap: Snapshot) -> np.ndarray:
    """The catalogue's frozen language-model vectors, as the text models encode (and cache)
    them: what diversity@K is measured in when no text model is among the compared ones."""
    ms, ts = settings.model, settings.train
    return lm.frozen_vectors(ms.encoder, snap.item_texts, ms.max_text_tokens, ts.text_batch_size, torch.device("cpu"),
                             seed=ts.seed, cache_dir=zoo.text_cache_dir(settings)).numpy()


def run(settings: Settings, snap: Snapshot, data: Dataset, wanted: set[str], which: list[str], *, rerank: bool,
        seeds: list[int], loo_seeds: int, fitted_elsewhere: Sequence[Recommender] = (),
        loo_skip: frozenset[str] = frozenset(), cold_seeds: Sequence[int] = ()) -> dict:
    """Fit the ``wanted`` models of the zoo on each protocol's training split and measure them
    (and ``fitted_elsewhere``, on the ``temporal`` family only) on its test split. ``loo_skip``
    names wanted models the (slow) ``loo`` family leaves out. ``cold_seeds`` are more seeds for
    ``cold_items`` alone: its few new items spread more from seed to seed than the other
    protocols, so their fits (of the models that read text) are measured there only."""
    cold_seeds = [c for c in dict.fromkeys(cold_seeds) if c not in seeds] if "cold_items" in which else []
    out: dict = {"protocols": {}, "models": {}, "seeds": seeds, "loo_seeds": seeds[:loo_seeds], "cold_seeds": cold_seeds,
                 "per_user": {}, "dataset": data.title}
    vectors = None
    inner_ctr = protocols.ctr(snap.events, snap.n_users, data.cutoff_ts - data.window * protocols.DAY, data.window)
    inner_cold = protocols.cold_items(snap.events, snap.n_users, snap.n_items, data.cutoff_ts - data.window * protocols.DAY,
                                      data.window)
    runs: dict = {}  # (protocol, model) -> list of metric dicts, one per seed
    for family, (valid, test) in splits_of(snap, which, data).items():
        evals = [p for p in which if (p == "loo") == (family == "loo")]
        splits = {p: protocol_split(snap, p, test, data) for p in evals}
        fitted = []
        family_wanted = wanted - loo_skip if family == "loo" else wanted
        for seed in seeds[:loo_seeds] if family == "loo" else [*seeds, *cold_seeds]:
            s = settings.model_copy(deep=True)
            s.train.seed = seed
            cold_only = seed in cold_seeds
            for rec in zoo.sequence_models(s, all_targets=family == "loo"):
                if rec.name not in family_wanted or (cold_only and not rec.model_settings.use_text):
                    continue
                start = time.perf_counter()
                info = fit_sequence(rec, snap, valid.train, valid, test.train, "ndcg_10", family != "loo",
                                    *((inner_ctr, inner_cold) if family != "loo" else (None, None)),
                                    cold_grid=settings.evaluation.cold_taste_weight_grid, cold_k=settings.evaluation.cold_taste_k,
                                    audience_grid=settings.evaluation.audience_activity_grid,
                                    fallback_days=settings.scoring.popular_days)
                info["fit_s"] = round(time.perf_counter() - start, 1)
                if vectors is None and rec.model_settings.use_text and rec.model_settings.finetune == "none":
                    vectors = rec.item_text_.cpu().numpy()  # the frozen vectors: the same for every model
                # The extra seeds' fits are listed apart: the family's metrics do not average them.
                out["models"].setdefault(rec.name, {}).setdefault("cold_items" if cold_only else family, []).append(info)
                fitted.append((seed, rec))
                if rerank and rec.name == zoo.MODEL and not cold_only:
                    rr = Reranked(rec, s.rerank, s.text, s.model.encoder, rec.device, seed)
                    start = time.perf_counter()
                    rr.fit(snap, test.train)
                    out["models"].setdefault(rr.name, {}).setdefault(family, []).append(
                        {"fit_s": round(time.perf_counter() - start, 1), "pairs": rr.n_pairs_})
                    fitted.append((seed, rr))
        for rec, info in tuned_baselines(settings, snap, valid, test.train, family_wanted):
            out["models"].setdefault(rec.name, {}).setdefault(family, []).append(info)
            fitted.append((None, rec))
        if family != "loo":
            fitted += [(None, rec) for rec in fitted_elsewhere]
        if vectors is None and fitted:
            vectors = catalogue_vectors(settings, snap)
        for seed, rec in fitted:
            for p, split in splits.items():
                if seed in cold_seeds and p != "cold_items":
                    continue
                measure(rec, p, split, snap, settings.evaluation.ks, vectors, runs, out["per_user"], settings.scoring.popular_days)
            log.info("%s (seed %s) evaluated on %s", rec.name, seed, family)
    for (p, name), seeds_out in runs.items():
        block = out["protocols"].setdefault(p, {"info": splits_of_info(snap, p, data)})
        keys = seeds_out[0].keys()
        block.setdefault("results", {})[name] = {k: float(np.mean([r[k] for r in seeds_out])) for k in keys}
        block.setdefault("std", {})[name] = {k: float(np.std([r[k] for r in seeds_out])) for k in keys}
        block.setdefault("n_seeds", {})[name] = len(seeds_out)
    out["bootstrap"] = bootstrap(out["per_user"])
    return out


def measure(rec, p: str, split, snap, ks: list[int], vectors, runs: dict, per_user: dict, fallback_days: int = FALLBACK_DAYS) -> None:
    """One fitted model on one protocol's test split, into ``runs`` (and ``per_user`` NDCG@10)."""
    if p in ("cold_items", "ctr") and isinstance(rec, Reranked):
        return  # the re-ranker re-orders a user's list: it neither ranks users nor changes p(click)
    runs.setdefault((p, rec.name), []).append(evaluate(rec, split, snap, ks, vectors, fallback_days=fallback_days))
    if p in ("loo", "temporal"):
        per_user.setdefault(p, {}).setdefault(rec.name, []).append(per_user_ndcg(rec, split, snap, 10, fallback_days=fallback_days).tolist())
    if p == "cold_items" and rec.name == zoo.MODEL:
        saved = rec.model_.items.text_to_id.clone()
        rec.model_.items.text_to_id.zero_()
        rec._cache = None
        runs.setdefault((p, NO_MAP), []).append(evaluate(rec, split, snap, ks, vectors, fallback_days=fallback_days))
        rec.model_.items.text_to_id.copy_(saved)
        rec._cache = None


def bootstrap(per_user: dict) -> dict:
    """Per protocol: llmrec against the best other model by mean NDCG@10 (per-user values averaged
    over seeds), the mean difference and its paired bootstrap 95% interval."""
    out = {}
    for p, models in per_user.items():
        mean = {name: np.mean(np.array(runs, dtype=np.float64), axis=0) for name, runs in models.items()}
        if zoo.MODEL not in mean:
            continue
        others = {n: v for n, v in mean.items() if n not in (zoo.MODEL, RERANK)}
        if not others:
            continue
        best = max(others, key=lambda n: np.nanmean(others[n]))
        diff, lo, hi = paired_bootstrap(mean[zoo.MODEL], others[best])
        out[p] = {"against": best, "diff": diff, "low": lo, "high": hi, "users": int(len(mean[zoo.MODEL]))}
    return out


def fit_cell(info: dict) -> str:
    """One fit: its seconds, then the epoch early stopping kept and the validation NDCG@10 there
    (sequence models), the cold-taste weight (text models) and the audience validation chose, or a dash
    (baselines, whose validation trials are under ``trials``)."""
    valid = f", {info['valid_ndcg_10']:.4f}" if "valid_ndcg_10" in info else ""
    taste = f", w {info['cold_taste_weight']:g}" if "cold_taste_weight" in info else ""
    if "audience" in info:
        taste += ", audience " + (f"share {info['audience_activity_weight']:g}" if info["audience"] == "share" else info["audience"])
    return f"{info['fit_s']} ({info.get('best_epoch', '-')}{valid}{taste})"


def valid_means(results: dict) -> dict[str, float]:
    """Each sequence model's validation NDCG@10 at its chosen epoch, averaged over the fits its
    metrics come from (not the extra ``cold_seeds``)."""
    out = {}
    for name, fam in results["models"].items():
        vals = [i["valid_ndcg_10"] for f, fits in fam.items() if f != "cold_items" for i in fits if "valid_ndcg_10" in i]
        if vals:
            out[name] = float(np.mean(vals))
    return out


def table(results: dict) -> str:
    """The markdown tables: metrics per protocol, the bootstrap, fit seconds and tuned values."""
    lines = []
    for p, cols in COLUMNS.items():
        if p not in results["protocols"]:
            continue
        block = results["protocols"][p]
        counts = block.get("n_seeds", {})
        uneven = p == "cold_items" and bool(results.get("cold_seeds"))  # then say how many seeds each row has
        lines += [f"**{p}** ({', '.join(f'{k}={v}' for k, v in block['info'].items())})", "",
                  "| model | " + " | ".join(cols) + (" | seeds" if uneven else "") + " |", "|---" * (len(cols) + 1 + uneven) + "|"]
        for name, m in block["results"].items():
            sd, n = block.get("std", {}).get(name, {}), counts.get(name, 1)
            cells = ["" if np.isnan(m.get(c, np.nan)) else f"{m[c]:.4f}" + (f" ± {sd[c]:.4f}" if n > 1 and c in sd else "") for c in cols]
            lines.append(f"| {name} | " + " | ".join(cells + ([str(n)] if uneven else [])) + " |")
        lines.append("")
        if p == "temporal":
            lines += ["Users a model ranks nothing for (those without history, for a baseline other than popularity) are measured on "
                      "the popularity fallback they are served (docs/evaluation.md, \"One ranking path\").", ""]
    boot = ["| protocol | llmrec against | NDCG@10 difference | 95% interval (paired bootstrap) | users |", "|---|---|---|---|---|"]
    for p, b in results.get("bootstrap", {}).items():
        boot.append(f"| {p} | {b['against']} | {b['diff']:+.4f} | [{b['low']:+.4f}, {b['high']:+.4f}] | {b['users']} |")
    families = ["loo", "temporal", *(["cold_items"] if results.get("cold_seeds") else [])]
    fits = ["| model | " + " | ".join(f"{f} fit s per seed (best epoch, validation NDCG@10, cold-taste w, audience)" for f in families)
            + " | tuned on validation |", "|---" * (len(families) + 2) + "|"]
    for name, fam in results["models"].items():
        cells = [", ".join(fit_cell(i) for i in fam[f]) if f in fam else "" for f in families]
        params = "; ".join(f"{f}: {fam[f][0]['params']}" for f in ("loo", "temporal") if f in fam and "params" in fam[f][0])
        fits.append(f"| {name} | " + " | ".join(cells) + f" | {params} |")
    # With one model there is nothing to compare: no bootstrap table.
    return "\n".join(lines + (boot + [""] if len(boot) > 2 else []) + fits)
