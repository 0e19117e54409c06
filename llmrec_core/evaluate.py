"""``llmrec evaluate``: the comparison of :mod:`llmrec_core.comparison` on the user's own lake,
printed as the quality benchmark prints it and recorded as an MLflow evaluation run.

    llmrec evaluate --ds D [--protocol temporal|loo|cold_items|ctr] [--models llmrec,popularity,...]
        [--model-version V [--force]] [--cutoff DAY] [--window DAYS] [--cold-window DAYS] [--seeds 42 43]

Where the protocols cut the snapshot of D (:func:`cutoffs`), first that applies:

1. ``--cutoff`` (a day: training is everything before it starts);
2. with ``--model-version``, the day after the version's training day, so it is measured only
   on days it never saw;
3. a known dataset's cut-offs, those of ``benchmarks/quality.py``: MovieLens-100K, recognised
   by its snapshot of 1998-04-22 (100,000 events, 943 users, 1,682 items);
4. the last ``evaluation.temporal_window_days`` before the end of D.

The window is ``--window`` or ``evaluation.temporal_window_days`` (the known dataset's own
otherwise), and the ``cold_items`` window is ``--cold-window`` or the window.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, datetime, time, timedelta, timezone

from llmrec_core import comparison
from llmrec_core.data import protocols
from llmrec_core.data.snapshot import Snapshot, load_snapshot
from llmrec_core.errors import LlmrecError
from llmrec_core.io import lake, tracking
from llmrec_core.recommenders import zoo
from llmrec_core.recommenders.portable import restore
from llmrec_core.settings import Settings, redact_url

log = logging.getLogger(__name__)
# What runs without --models: the benchmark's models, less the slow re-ranker (name it to add it).
DEFAULT_MODELS = [zoo.MODEL, *zoo.ABLATIONS, "popularity", "item_knn", "ease", "als", "content"]


@dataclasses.dataclass(frozen=True)
class Registered:
    """A registered version to measure, as the scoring job loaded it (``jobs.score.load_version``:
    a forged bundle or a version the gate refused never gets here unless forced)."""

    version: str
    model: dict  # the bundle's serving model, as exported
    reranker: dict | None  # its cross-encoder, when the scoring settings re-rank
    trained: date  # the last day of the data it was trained on
    tags: dict[str, str]  # model_version, promotion (and forced) for the evaluation run


class BadRequest(LlmrecError):
    """What was asked cannot be evaluated (an unknown model, a day the lake has no snapshot of):
    the command exits 2, as for a bad option."""

    exit_code = 2


def wanted_models(settings: Settings, names: list[str] | None, with_version: bool) -> set[str]:
    """The zoo models to fit: ``names``, else none beside a named version, else :data:`DEFAULT_MODELS`.
    The re-ranker brings the model it re-ranks."""
    if names is None:
        return set() if with_version else set(DEFAULT_MODELS)
    known = comparison.model_names(settings)
    if unknown := [n for n in names if n not in known]:
        raise BadRequest(f"unknown model(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    return set(names) | ({zoo.MODEL} if comparison.RERANK in names else set())


def require_snapshot(settings: Settings, ds: date) -> None:
    """A day the lake has a snapshot of (else one line that names the days it has)."""
    days = lake.list_partitions(settings.lake_table("items"))
    if ds not in days:
        have = f"it has {days[0]}..{days[-1]}" if days else "it has none: run `llmrec etl` first"
        raise BadRequest(f"no snapshot of {ds} in {settings.lake_dir}; {have}")


def recognise(ds: date, counts: dict[str, int]) -> comparison.Dataset | None:
    """The known dataset whose snapshot of ``ds`` has exactly these counts, if any."""
    key = (counts["events"], counts["users"], counts["items"])
    return next((d for d in comparison.DATASETS.values() if d.counts == key and d.ds == ds), None)


def cutoffs(settings: Settings, snap: Snapshot, *, cutoff: date | None = None, window: int | None = None,
            cold_window: int | None = None, trained: date | None = None) -> tuple[comparison.Dataset, str]:
    """Where the protocols cut ``snap`` (the order is the module's), and which rule said so."""
    known = recognise(snap.ds, snap.counts())
    if known is not None and cutoff is None and trained is None:
        window = window or known.window
        why = f"the quality benchmark's, for {known.title}"
        return dataclasses.replace(known, window=window, cold_window=cold_window or known.cold_window), why
    window = window or settings.evaluation.temporal_window_days
    if cutoff is not None:
        why = "--cutoff"
    elif trained is not None:
        cutoff, why = trained + timedelta(days=1), "the day after the version's training day"
    else:
        cutoff, why = snap.ds + timedelta(days=1 - window), f"the last {window} days of {snap.ds}"
    start = datetime.combine(cutoff, time(), tzinfo=timezone.utc)
    return comparison.Dataset(f"the lake in {settings.lake_dir}", snap.ds, start, window, cold_window or window), why


def check(snap: Snapshot, data: comparison.Dataset, protocol: str, trained: date | None, fits: bool = True) -> None:
    """Refuse what would measure nothing, fit models on nothing (``fits``: models are fitted, not
    only a registered version measured), or measure a registered version on data it trained on."""
    if trained is not None and protocol == "loo":
        raise BadRequest("loo holds out each user's last events, which a registered version trained on: "
                         "evaluate it with temporal, cold_items or ctr")
    if trained is not None and data.cutoff.date() <= trained:
        raise BadRequest(f"the version was trained on data up to {trained}: a cut-off of {data.cutoff.date()} "
                         "would measure it on days it trained on")
    if protocol == "loo":
        return
    if not snap.events.ts.size or data.cutoff_ts >= snap.end_ts:
        raise LlmrecError(f"the cut-off {data.cutoff.date()} leaves no day of {snap.ds}'s data after it to measure on "
                          "(a later --ds, or an earlier --cutoff)")
    split = comparison.protocol_split(snap, protocol, protocols.temporal(snap.events, snap.n_users, data.cutoff_ts, data.window), data)
    if not any(split.info.values()):
        raise LlmrecError(f"nothing to measure {protocol} on after {data.cutoff.date()} ({split.info}): "
                          "choose another --cutoff or --window")
    inner = data.cutoff - timedelta(days=data.window)
    if fits and not (snap.events.ts < int(inner.timestamp())).any():
        raise BadRequest(f"models are tuned and stopped early on the {data.window} days before the cut-off, from "
                          f"{inner.date()}, and no event of {snap.ds} comes before that day to fit them on "
                          "(a later --cutoff, or a shorter --window)")


def run(settings: Settings, ds: date, protocol: str, wanted: set[str], *, seeds: list[int] | None = None,
        cutoff: date | None = None, window: int | None = None, cold_window: int | None = None,
        registered: Registered | None = None) -> dict:
    """Evaluate ``wanted`` (and a ``registered`` version) on the snapshot of ``ds`` and record
    the evaluation run; returns the results with the run id."""
    snap = load_snapshot(settings, ds)
    trained = registered.trained if registered else None
    data, why = cutoffs(settings, snap, cutoff=cutoff, window=window, cold_window=cold_window, trained=trained)
    check(snap, data, protocol, trained, fits=bool(wanted))
    seeds = seeds or [settings.train.seed]
    elsewhere = [restored(settings, registered, snap, protocol)] if registered else []
    log.info("evaluating %s on %s: cut-off %s (%s), window %d days", sorted(wanted), protocol, data.cutoff.date(), why, data.window)
    results = comparison.run(settings, snap, data, wanted, [protocol], rerank=comparison.RERANK in wanted, seeds=seeds,
                             loo_seeds=len(seeds), fitted_elsewhere=elsewhere)
    request = {"ds": str(ds), "protocol": protocol, "models": ",".join(sorted(wanted | {r.name for r in elsewhere})),
               "cutoff": str(data.cutoff.date()), "window": str(data.window), "cold_window": str(data.cold_window),
               "cutoff_from": why, "seeds": ",".join(map(str, seeds)), "dataset": data.title,
               **(registered.tags if registered else {})}
    results.update(request=request, table=comparison.table(results))
    results["run_id"] = record(settings, results)
    return results


def restored(settings: Settings, registered: Registered, snap: Snapshot, protocol: str):
    """The version on the snapshot's catalogue, as scoring restores it, named ``<kind>_v<version>``
    beside the models fitted here. The cross-encoder re-orders lists only, so ``cold_items``
    and ``ctr`` measure the model under it."""
    reranker = registered.reranker if protocol in ("loo", "temporal") else None
    rec = restore(registered.model, snap, settings.scoring.device, reranker=reranker, text=settings.text)
    rec.name = f"{rec.name}_v{registered.version}"
    return rec


def record(settings: Settings, results: dict) -> str:
    """The evaluation run: tagged ``kind=evaluation`` with the request, ``<model>.<metric>``
    metrics (the test split's, and ``<model>.valid_ndcg_10`` for sequence models: the
    validation split's at the epoch early stopping kept, mean over seeds), and
    ``evaluation.json`` (the results and the printed tables)."""
    request = results["request"]
    tracking.setup(settings)
    with tracking.run(f"evaluate {request['ds']} {request['protocol']}", params=request,
                      tags={"kind": "evaluation", "git_commit": tracking.git_commit(), **request}) as run_id:
        block = results["protocols"].get(request["protocol"], {"results": {}})
        for name, metrics in block["results"].items():
            tracking.log_metrics(metrics, prefix=f"{name}.")
        # What to choose settings by: the validation split's NDCG@10, never the test split's.
        tracking.log_metrics({f"{name}.valid_ndcg_10": v for name, v in comparison.valid_means(results).items()})
        tracking.log_dict({k: v for k, v in results.items() if k != "per_user"}, "evaluation.json")
    return run_id


def summary(results: dict, settings: Settings) -> str:
    """What the command prints: where the data was cut, the benchmark's tables, the MLflow run."""
    r = results["request"]
    cut = {"loo": "each user's last event held out, the one before it for validation",
           "cold_items": f"cut-off {r['cutoff']} ({r['cutoff_from']}), cold-items window {r['cold_window']} days"}.get(
               r["protocol"], f"cut-off {r['cutoff']} ({r['cutoff_from']}), window {r['window']} days")
    head = f"evaluated {r['protocol']} on the snapshot of {r['ds']} ({r['dataset']}): {cut}"
    return "\n".join([head, "", results["table"], "", f"MLflow evaluation run {results['run_id']} in {redact_url(settings.tracking_uri)}"])
