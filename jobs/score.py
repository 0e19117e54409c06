"""Nightly scoring: the champion's recommendations for every user and every item of day D.

They are validated and published atomically to the warehouse.

    python -m jobs.score --ds 1998-04-22 [--model-version 3] [--config FILE]
    llmrec score --ds latest

Top to bottom: settings -> the model version (champion unless named) -> lake snapshot of D ->
the recommender restored onto D's catalogue (any kind the registry holds; the LLM and the
content baseline encode new items from their text), wrapped in its cross-encoder when
re-ranking -> what may be recommended -> scoring inputs -> each user's ``recommend`` list and
each item's audience (engine ``local`` or ``spark``) -> similar items -> validation -> one publishing transaction -> Parquet copies
under ``lake/serving/`` -> metrics, dataset inputs and plots of the run in MLflow.
"""

from __future__ import annotations

import getpass
import logging
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from jobs.common import ds_parser, guarded, run_main
from llmrec_core import plots
from llmrec_core.data.snapshot import Snapshot, load_item_facets, load_snapshot
from llmrec_core.days import parse_day, resolve_day
from llmrec_core.errors import LlmrecError, MissingInputError
from llmrec_core.io import tracking
from llmrec_core.io.serving_schema import SCHEMAS
from llmrec_core.io.warehouse import Warehouse, reconcile_parquet_copies, write_parquet_copies
from llmrec_core.recommenders.llm import pick_device
from llmrec_core.recommenders.portable import restore
from llmrec_core.recommenders.reranked import Reranked
from llmrec_core.registry.bundle import load_bundle
from llmrec_core.scoring import engine, runners
from llmrec_core.scoring.filters import allowed_items
from llmrec_core.scoring.inputs import scoring_inputs
from llmrec_core.scoring.validate import ValidationError, validate
from llmrec_core.settings import Settings, load_settings

log = logging.getLogger("jobs.score")


def rerank_head(mode: str, bundle, device: str) -> dict | None:
    """The bundle's cross-encoder when ``mode`` (``scoring.rerank``, ``refresh.rerank``) asks for it."""
    if mode == "off" or (mode == "auto" and pick_device(device).type != "cuda"):
        return None
    if bundle.reranker is None:
        if mode == "on":
            raise MissingInputError("re-ranking is 'on' but this model version has no re-ranker (trained with rerank.enabled: off, or auto without a GPU)")
        return None
    return bundle.reranker


def _const(value, n: int, type_=pa.string()) -> pa.Array:
    return pa.repeat(pa.scalar(value, type_), n)


def _ids(column: pa.Array, index: np.ndarray) -> pa.Array:
    """Indices of ``column`` as the IDs of ``index``."""
    return pa.array(index[column.to_numpy()], pa.string())


def tables(snap: Snapshot, ds: date, recs: pa.Table, similar: pa.Table, audience: pa.Table, *,
           model_name: str, version: str, run_id: str) -> dict[str, pa.Table]:
    """The serving tables of docs/data-contract.md, with IDs in place of indices."""
    uid, iid = snap.user_ids, snap.item_ids
    m, a = len(similar), len(audience)
    return {
        "user_recommendations": user_table(snap, ds, recs, model_name=model_name, version=version, run_id=run_id),
        "item_recommendations": pa.table([_const(ds, m, pa.date32()), _ids(similar["item"], iid), similar["rank"],
                                          _ids(similar["rec_item"], iid), similar["score"], _const(version, m)],
                                         schema=SCHEMAS["item_recommendations"]),
        "item_audience": pa.table([_const(ds, a, pa.date32()), _ids(audience["item"], iid), audience["rank"], _ids(audience["user"], uid),
                                   audience["score"], _const(version, a)], schema=SCHEMAS["item_audience"]),
    }


def served_model(mv, bundle) -> str | None:
    """Which model a version is (llmrec or a baseline the gate served instead): its bundle says,
    and its registry tag where an older bundle does not."""
    return bundle.meta.get("model") or mv.tags.get("model")


def user_table(snap: Snapshot, ds: date, recs: pa.Table, *, model_name: str, version: str, run_id: str) -> pa.Table:
    """The ``user_recommendations`` columns of engine rows (``USER_ROWS``), with IDs in place of indices."""
    n = len(recs)
    return pa.table([_const(ds, n, pa.date32()), _ids(recs["user"], snap.user_ids), recs["rank"], _ids(recs["item"], snap.item_ids),
                     recs["score"], recs["reason"], recs["source"], _const(model_name, n), _const(version, n), _const(run_id, n)],
                    schema=SCHEMAS["user_recommendations"])


def log_lists(recs: pa.Table, allowed: np.ndarray, ds: date) -> None:
    """Figures and coverage of the user lists about to be published (engine rows, ``USER_ROWS``):
    their scores and the source that filled them, and how much of what may be recommended
    (``allowed``) they show, and how evenly."""
    score, rank, item = (recs[c].to_numpy() for c in ("score", "rank", "item"))
    source = recs["source"].to_numpy(zero_copy_only=False)
    counts = np.bincount(item, minlength=len(allowed))[allowed]
    tracking.log_metrics({"catalogue_coverage": float((counts > 0).mean()) if len(counts) else None})
    tracking.log_figure(plots.score_distribution(score, source, f"published scores, ds={ds}"), "plots/score_distribution.png")
    tracking.log_figure(plots.source_mix(rank, source, f"what filled the lists, ds={ds}"), "plots/source_mix.png")
    tracking.log_figure(plots.catalogue_coverage(counts, f"catalogue coverage, ds={ds}"), "plots/catalogue_coverage.png")


def load_version(settings: Settings, model_version: str | None, ds: date, force: bool = False):
    """The registered version to serve (the champion unless named) and its bundle. Refuses a
    version trained on data after ``ds``, and one the promotion gate did not promote unless
    ``force`` (however it got there: an alias moved by hand is no promotion)."""
    tracking.setup(settings)
    mv = tracking.model_version(settings, model_version)
    name = settings.tracking.registered_model
    if mv is None:
        raise MissingInputError(f"no model version {model_version} of {name!r}" if model_version else
                                f"no '{settings.tracking.champion_alias}' version of {name!r}: run `llmrec train` first")
    if (why := tracking.not_promoted(mv)) is not None:
        if not force:
            raise LlmrecError(f"{name} version {mv.version} was not promoted by the gate ({why}): serving it anyway "
                              "needs --force (in Airflow, the `force` of the llmrec_score form), and is recorded as forced")
        log.warning("serving %s version %s although the gate did not promote it (%s): forced", name, mv.version, why)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = load_bundle(tracking.download_bundle(settings, mv.version, Path(tmp)), gate=False)
    trained = parse_day(bundle.meta["ds"])
    if trained > ds:
        raise MissingInputError(f"{name} version {mv.version} was trained on data up to {trained}, after {ds}: "
                                f"using it for {ds} would use the future (name an older --model-version)")
    return mv, bundle


def forced_record(mv, forced_by: str | None) -> dict[str, str]:
    """``forced``, ``forced_by`` and ``forced_reason`` for a version the gate did not promote
    (served with ``force``); nothing for a promoted one."""
    why = tracking.not_promoted(mv)
    return {"forced": "true", "forced_by": forced_by or getpass.getuser(), "forced_reason": why} if why is not None else {}


def forced_lines(out: dict) -> list[str]:
    """The summary's FORCED line for a run that served a refused version (see ``forced_record``)."""
    return [f"  FORCED by {out['forced_by']}: the gate did not promote this version ({out['forced_reason']})"] if out.get("forced") else []


def run(settings: Settings, ds: date, model_version: str | None = None, spark=None, force: bool = False,
        forced_by: str | None = None) -> dict:
    """Score ``ds`` with a version and publish it. ``force`` serves a version the gate refused;
    the scoring run then carries ``forced``, ``forced_by`` and ``forced_reason`` tags."""
    sc = settings.scoring
    started = time.perf_counter()
    mv, bundle = load_version(settings, model_version, ds, force=force)
    if settings.warehouse.parquet_copies:
        with Warehouse.open(settings) as wh:
            reconcile_parquet_copies(settings.lake_dir, wh, settings.warehouse.keep_days)
    forced = forced_record(mv, forced_by)
    name = settings.tracking.registered_model
    snap = load_snapshot(settings, ds)
    rec = restore(bundle.model, snap, sc.device, reranker=rerank_head(sc.rerank, bundle, sc.device), text=settings.text)
    categories, attributes = load_item_facets(settings, ds)
    allowed = snap.item_available & allowed_items(sc.filters, categories, attributes)
    inputs = scoring_inputs(settings, snap, rec, allowed)
    if sc.engine == "spark":
        from llmrec_core.io.spark import get_spark

        recs, audience = runners.run_spark(spark or get_spark(settings.spark, "llmrec-score"), inputs, sc.users_per_partition)
    else:
        recs, audience = runners.run_local(inputs)
    similar = engine.similar_items(inputs, sc.similar_k)
    scored = time.perf_counter() - started
    history = inputs.history
    with Warehouse.open(settings) as wh, tracking.run(f"score {ds}", tags={"kind": "scoring", "ds": str(ds), "model_version": str(mv.version), **forced},
                                                      close_quietly=True) as run_id:
        tracking.log_snapshot_inputs(settings, snap, "scoring")
        wh.ensure_schema()
        before = [d for d in wh.published_days() if d < ds]
        previous = wh.counts(before[-1]) if before else {}
        failures = validate(recs, similar, audience, seen=(history.indptr, snap.events.item), allowed=allowed, k=sc.k,
                            similar_k=sc.similar_k, previous=previous, tolerance=settings.warehouse.row_count_tolerance)
        sources = dict(zip(*np.unique(recs["source"].to_numpy(zero_copy_only=False), return_counts=True), strict=True))
        tracking.log_metrics({"users": snap.n_users, "items": snap.n_items, "allowed_items": int(allowed.sum()), "scoring_seconds": scored,
                              "checks_failed": len(failures), **{f"rows_{k}": int(v) for k, v in sources.items()}})
        if failures:
            raise ValidationError(failures)
        log_lists(recs, allowed, ds)
        out = tables(snap, ds, recs, similar, audience, model_name=name, version=str(mv.version), run_id=run_id)
        counts = wh.publish(ds, out, run_id=run_id, model_name=name, model_version=str(mv.version), model=served_model(mv, bundle),
                            keep_days=settings.warehouse.keep_days)
        target = f"{wh.kind} {wh.where}"
    if settings.warehouse.parquet_copies:
        # After the commit; a crash in between is repaired by the next run's reconcile.
        write_parquet_copies(settings.lake_dir, ds, out, settings.warehouse.keep_days, run_id)
    seconds = time.perf_counter() - started
    log.info("published %s for %s in %.1fs: %s", counts, ds, seconds, sources)
    return {"ds": str(ds), "version": str(mv.version), "counts": counts, "sources": {k: int(v) for k, v in sources.items()},
            "users": snap.n_users, "items": snap.n_items, "seconds": seconds, "scoring_seconds": scored,
            "warehouse": target, "run_id": run_id, "reranked": isinstance(rec, Reranked), **forced}


def summary(out: dict, settings: Settings) -> str:
    lines = [f"published {out['ds']} with {settings.tracking.registered_model} version {out['version']} to {out['warehouse']}:"]
    lines += forced_lines(out)
    lines += [f"  {table:22s} {rows:>10,} rows" for table, rows in out["counts"].items()]
    lines.append(f"  {out['users']:,} users by source: " + ", ".join(f"{k} {v:,} rows" for k, v in out["sources"].items()))
    lines.append(f"  re-ranked: {'yes' if out['reranked'] else 'no'}; {out['seconds']:.1f}s in all, {out['scoring_seconds']:.1f}s scoring")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = ds_parser("score", __doc__, "score as of this day", prog)
    parser.add_argument("--model-version", help="registered version to use (default: the champion)")
    parser.add_argument("--engine", choices=["local", "spark"], help="override scoring.engine")
    parser.add_argument("--force", action="store_true", help="serve a version the promotion gate refused (recorded in the scoring run)")
    parser.add_argument("--forced-by", help="who forces it, for the record (default: this OS user)")
    args = parser.parse_args(argv)

    def go():
        settings = load_settings(args.config)
        if args.engine:
            settings.scoring.engine = args.engine
        ds = resolve_day(args.ds, settings.raw_table("events"))
        with guarded(settings, "score", [ds]):
            print(summary(run(settings, ds, args.model_version, force=args.force, forced_by=args.forced_by), settings))
    return run_main(go)


if __name__ == "__main__":
    raise SystemExit(main())
