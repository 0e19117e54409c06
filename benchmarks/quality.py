"""Recommendation quality on MovieLens-100K: the LLM model, its ablations and every baseline.

    .venv/bin/python benchmarks/quality.py [--protocols loo temporal] [--models llmrec popularity]

Needs the lake of ``make run`` (MovieLens-100K) in ``$LLMREC_HOME``. Protocols
(docs/evaluation.md), all on the snapshot of the data's last day, 1998-04-22. Every model ranks
through its own ``recommend`` (the path ``llmrec score`` publishes with):

- ``loo``: leave-last-out (every interaction is a target; last item test, second-to-last
  validation for early stopping; full ranking; the user's history excluded). This is the usual
  sequential split, but not RecBole's: RecBole 1.2.1 does not exclude already-seen items for
  sequential models, so its published figures are not comparable with these.
- ``temporal``, ``ctr``: cutoff 1998-01-01, 30-day window; 211 users have new positives in the
  window, 116 of them new users. ``cold_items``: the same cutoff, every positive after it (86
  items first seen after the cutoff, 261 users); each user's cold items are ranked against
  the cold items, and each cold item's users against all users.
  Sequence models pick their epoch count on [cutoff - 30 d, cutoff) with training before
  that, and are then refit on everything before the cutoff, as the training job does.

Every model of a protocol fits on the same training events. Results: ``<work>/quality.json``
and the table in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, write_section  # noqa: E402

from llmrec_core.data import protocols  # noqa: E402
from llmrec_core.data.snapshot import load_snapshot  # noqa: E402
from llmrec_core.evaluation import evaluate  # noqa: E402
from llmrec_core.recommenders import zoo  # noqa: E402
from llmrec_core.recommenders.reranked import Reranked  # noqa: E402
from llmrec_core.settings import load_settings  # noqa: E402

log = logging.getLogger("quality")
DS = date(1998, 4, 22)
CUTOFF = datetime(1998, 1, 1, tzinfo=timezone.utc)
WINDOW = 30
# Only 11 items first appear in the 30-day window; every positive after the cutoff (to the end
# of the data, 112 days) gives 86 cold items, enough to rank them against each other.
COLD_WINDOW = 120
COLUMNS = {
    "loo": ["hr_10", "ndcg_10", "mrr_10", "hr_20", "ndcg_20"],
    "temporal": ["recall_20", "ndcg_10", "precision_10", "recall_20_warm_users", "recall_20_cold_users",
                 "recall_20_cold_items", "coverage_10", "novelty_10", "diversity_10", "popularity_bias_10", "gini_10"],
    "cold_items": ["cold_recall_10", "cold_recall_20", "cold_random_recall_20", "cold_audience_recall_20"],
    "ctr": ["auc", "user_auc", "log_loss"],
}


def fit_sequence(rec, snap, inner_train, inner_valid, outer_train, metric, vectors, refit: bool):
    """Early stopping on the inner split, then (optionally) refit on the outer training data."""
    rec.fit(snap, inner_train, validate=lambda: evaluate(rec, inner_valid, snap, [10], vectors)[metric])
    best = rec.result_.best_epoch
    if refit:
        rec.fit(snap, outer_train, epochs=best)
    return {"best_epoch": best, "epochs_run": rec.result_.epochs_run if not refit else best}


def run(settings, wanted: set[str], which: list[str], rerank: bool) -> dict:
    snap = load_snapshot(settings, DS)
    out: dict = {"protocols": {}, "models": {}}
    vectors = None
    cutoff = int(CUTOFF.timestamp())
    splits = {}
    if "loo" in which:
        splits["loo"] = protocols.loo(snap.events, snap.n_users)
    if set(which) & {"temporal", "cold_items", "ctr"}:
        inner = protocols.temporal(snap.events, snap.n_users, cutoff - WINDOW * protocols.DAY, WINDOW)
        splits["temporal"] = (inner, protocols.temporal(snap.events, snap.n_users, cutoff, WINDOW))
    for family, (valid, test) in splits.items():
        evals = [p for p in which if (p == "loo") == (family == "loo")]
        models = zoo.sequence_models(settings, all_targets=family == "loo")
        for rec in models + zoo.baselines(settings):
            if rec.name not in wanted:
                continue
            start = time.perf_counter()
            if hasattr(rec, "model_settings"):
                info = fit_sequence(rec, snap, valid.train, valid, test.train, "ndcg_10", None, family != "loo")
                if vectors is None and rec.model_settings.use_text:
                    vectors = rec.item_text_.cpu().numpy()
            else:
                rec.fit(snap, test.train)
                info = {}
            info["fit_s"] = round(time.perf_counter() - start, 1)
            recs = [rec]
            if rerank and rec.name == zoo.MODEL:
                rr = Reranked(rec, settings.rerank, settings.text, settings.model.encoder, rec.device, settings.train.seed)
                t = time.perf_counter()
                rr.fit(snap, test.train)
                recs.append(rr)
                out["models"].setdefault(rr.name, {})[family] = {"fit_s": round(time.perf_counter() - t, 1), "pairs": rr.n_pairs_}
            for r in recs:
                for p in evals:
                    if p == "cold_items" and r is not rec:
                        continue  # the re-ranker only re-orders a user's list; cold_items ranks users
                    split = test if p in ("loo", "temporal") else (
                        protocols.cold_items(snap.events, snap.n_users, snap.n_items, cutoff, COLD_WINDOW) if p == "cold_items"
                        else protocols.ctr(snap.events, snap.n_users, cutoff, WINDOW))
                    if p == "ctr" and r is not rec:
                        continue
                    out["protocols"].setdefault(p, {"info": split.info})
                    out["protocols"][p].setdefault("results", {})[r.name] = evaluate(
                        r, split, snap, settings.evaluation.ks, vectors)
            out["models"].setdefault(rec.name, {})[family] = info
            log.info("%s done on %s: %s", rec.name, family, info)
    return out


def table(results: dict) -> str:
    lines = []
    for p, cols in COLUMNS.items():
        if p not in results["protocols"]:
            continue
        block = results["protocols"][p]
        lines += [f"**{p}** ({', '.join(f'{k}={v}' for k, v in block['info'].items())})", "",
                  "| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name, m in block["results"].items():
            lines.append(f"| {name} | " + " | ".join("" if np.isnan(m.get(c, np.nan)) else f"{m[c]:.4f}" for c in cols) + " |")
        lines.append("")
    fits = ["| model | " + " | ".join(f"{f} fit s (best epoch)" for f in ("loo", "temporal")) + " |", "|---|---|---|"]
    for name, fam in results["models"].items():
        cells = [f"{fam[f]['fit_s']} ({fam[f].get('best_epoch', '-')})" if f in fam else "" for f in ("loo", "temporal")]
        fits.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines + fits)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocols", nargs="+", default=["loo", "temporal", "cold_items", "ctr"])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--no-rerank", action="store_true")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "_work")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    settings = load_settings()
    wanted = set(args.models or [zoo.MODEL, *zoo.ABLATIONS, "popularity", "item_knn", "als"])
    start = time.perf_counter()
    results = run(settings, wanted, args.protocols, not args.no_rerank)
    results["wall_s"] = round(time.perf_counter() - start, 1)
    results["machine"] = machine()
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "quality.json").write_text(json.dumps(results, indent=2, default=float))
    print(table(results))
    if not args.no_write:
        write_section("quality", "Recommendation quality (MovieLens-100K)", "\n".join([
            f"Machine: {results['machine']}. Run: {time.strftime('%Y-%m-%d', time.gmtime())}, "
            f"`.venv/bin/python benchmarks/quality.py`, {results['wall_s']} s in all.", "", table(results)]))


if __name__ == "__main__":
    main()
