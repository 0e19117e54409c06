"""The intraday refresh: does re-ranking with today's behaviours beat the nightly list, and what
does one refresh cost.

    .venv/bin/python benchmarks/refresh.py quality --dataset movielens-100k|synthetic|synthetic-sessions [--seeds 42 43 44] [--fresh 3]
    .venv/bin/python benchmarks/refresh.py cost [--users 1000 10000 100000]

**quality** (``$LLMREC_HOME`` is the dataset's lake, as for ``quality.py``). The champion is the
``llmrec`` model of the ``temporal`` protocol: early stopping and calibration on the 30 days
before the cutoff, refit on everything before it. Then every day D of the 30-day window is
replayed. For each user who acts on D, the first ``--fresh`` behaviours of their first session
of the day (sessions split at 30 minutes of silence; at most all but one of the day's
behaviours) are the fresh events; the truth is the positives among the rest of D and all of D+1
that the user had not met before. Three lists of 10 are compared on HR@10 and NDCG@10:

- ``nightly``: what the nightly table of D-1 serves (the champion on the lake snapshot of D-1;
  a user unknown on D-1 gets the popularity fallback, as in the table);
- ``nightly_unseen``: the same list with the items the user just met taken out (what a client
  that filters today's items could show without any model);
- ``refreshed``: the intraday refresh (``llmrec_core.scoring.fresh``, the code of
  ``llmrec refresh``): the snapshot of D-1 with the fresh events appended, ranked as of the
  last fresh event.

Means over user-days and a paired bootstrap 95% interval of the per-user-day difference,
pooled over seeds. The cross-encoder is off (``refresh.rerank: auto`` on a CPU).

**cost** (its own home under ``--work``, built from the synthetic lake of ``quality.py``'s
second dataset): a champion trained on the lake up to D-1 (one epoch: a refresh's cost does not
depend on the weights, so it is served with ``force`` whatever the gate decided), then for N
active users one raw file of D with 5 behaviours each (the lake's users first, then users new
today), and ``jobs.refresh.run`` on it with an already started Spark session. Reports the
phases of the job, the fixed and per-user parts fitted over N, and the per-user p50/p99 of the
ranking step (one user at a time), with and without the cross-encoder. Results:
``<work>/refresh.json`` and the sections in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, write_section  # noqa: E402
from quality import DATASETS, Dataset, fit_sequence, lake_settings  # noqa: E402

from llmrec_core import metrics  # noqa: E402
from llmrec_core.data import protocols  # noqa: E402
from llmrec_core.data.snapshot import day_start, load_snapshot  # noqa: E402
from llmrec_core.metrics import paired_bootstrap  # noqa: E402
from llmrec_core.recommenders import zoo  # noqa: E402
from llmrec_core.recommenders.portable import restore  # noqa: E402
from llmrec_core.recommenders.reranked import Reranked  # noqa: E402
from llmrec_core.scoring import engine  # noqa: E402
from llmrec_core.scoring.fresh import fresh_lists, with_fresh  # noqa: E402
from llmrec_core.scoring.inputs import scoring_inputs  # noqa: E402
from llmrec_core.settings import load_settings  # noqa: E402

log = logging.getLogger("refresh-bench")
SESSION_GAP = 30 * 60
K = 10
LISTS = ("nightly", "nightly_unseen", "refreshed")


# -- quality ---------------------------------------------------------------------------------
def user_days(snap, day: dt.date, fresh_n: int) -> list[dict]:
    """The replayed user-days of ``day``: fresh rows, truth item IDs, what was met before."""
    ev = snap.events
    start, end, after = day_start(day), day_start(day + dt.timedelta(days=1)), day_start(day + dt.timedelta(days=2))
    indptr = ev.indptr(snap.n_users)
    out = []
    for u in np.unique(ev.user[(ev.ts >= start) & (ev.ts < end)]):
        rows = np.arange(indptr[u], indptr[u + 1])
        today = rows[(ev.ts[rows] >= start) & (ev.ts[rows] < end)]
        gaps = np.flatnonzero(np.diff(ev.ts[today]) > SESSION_GAP)
        session = int(gaps[0]) + 1 if len(gaps) else len(today)
        f = min(fresh_n, session, len(today) - 1)
        if f < 1:
            continue
        fresh, later = today[:f], np.concatenate([today[f:], rows[(ev.ts[rows] >= end) & (ev.ts[rows] < after)]])
        before = set(ev.item[rows[ev.ts[rows] < start]].tolist()) | set(ev.item[fresh].tolist())
        truth = {snap.item_ids[i] for i in ev.item[later[ev.label[later] == 1]].tolist() if i not in before}
        if truth:
            out.append({"user": int(u), "fresh": fresh, "truth": truth, "met": {snap.item_ids[i] for i in ev.item[fresh]},
                        "warm": bool((ev.ts[rows] < start).any())})
    return out


def fresh_table(snap, cases: list[dict]) -> pa.Table:
    ev = snap.events
    rows = np.concatenate([c["fresh"] for c in cases])
    return pa.table({
        "event_id": [f"bench-{r}" for r in rows.tolist()], "user_id": pa.array(snap.user_ids[ev.user[rows]].astype(str)),
        "item_id": pa.array(snap.item_ids[ev.item[rows]].astype(str)), "event_type": pa.array(ev.event_type[rows].astype(str)),
        "value": pa.array(np.where(np.isnan(ev.value[rows]), None, ev.value[rows]), pa.float64()),
        "ts": pa.array(ev.ts[rows] * 1_000_000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    })


def lists_of(rows: pa.Table, snap) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for u, i in zip(rows["user"].to_numpy().tolist(), rows["item"].to_numpy().tolist(), strict=True):
        out.setdefault(str(snap.user_ids[u]), []).append(str(snap.item_ids[i]))
    return out


def replay_day(settings, state: dict, full, day: dt.date, fresh_n: int) -> list[dict]:
    """Every replayed user-day of ``day`` with its three lists' NDCG@10 and HR@10."""
    cases = user_days(full, day, fresh_n)
    if not cases:
        return []
    prev = load_snapshot(settings, day - dt.timedelta(days=1))
    fd = with_fresh(settings, prev, fresh_table(full, cases))
    rec = restore(state, fd.snap, "cpu", text=settings.text)
    allowed = fd.snap.item_available.copy()
    by_id = {u: i for i, u in enumerate(fd.snap.user_ids.astype(str))}
    moment = np.full(fd.snap.n_users, day_start(day), np.int64)
    for c in cases:
        moment[by_id[str(full.user_ids[c["user"]])]] = int(full.events.ts[c["fresh"][-1]]) + 60
    s = settings.model_copy(deep=True)
    s.scoring.k = K
    refreshed = lists_of(fresh_lists(s, fd, rec, allowed, moment)[0], fd.snap)
    # The nightly list of D-1: the same catalogue and users, D-1's events only.
    s.scoring.k = K + fresh_n
    nightly_snap = dataclasses.replace(fd.snap, ds=prev.ds, events=prev.events)
    sc = scoring_inputs(s, nightly_snap, rec, allowed)
    users = np.array(sorted(by_id[str(full.user_ids[c["user"]])] for c in cases), np.int64)
    nightly = lists_of(engine.recommend(users, sc), fd.snap)
    out = []
    for c in cases:
        uid = str(full.user_ids[c["user"]])
        served = nightly.get(uid, [])
        lists = {"nightly": served[:K], "nightly_unseen": [i for i in served if i not in c["met"]][:K], "refreshed": refreshed.get(uid, [])}
        row = {"day": str(day), "user": uid, "warm": c["warm"], "truth": len(c["truth"])}
        for name, items in lists.items():
            row[f"ndcg_{name}"], row[f"hr_{name}"] = metrics.ndcg(items, c["truth"], K), metrics.hit_rate(items, c["truth"], K)
        out.append(row)
    return out


def quality(settings, data: Dataset, seeds: list[int], fresh_n: int, rerank_pairs: int = 0) -> dict:
    full = load_snapshot(settings, data.ds)
    inner = protocols.temporal(full.events, full.n_users, data.cutoff_ts - data.window * protocols.DAY, data.window)
    outer = protocols.temporal(full.events, full.n_users, data.cutoff_ts, data.window)
    inner_ctr = protocols.ctr(full.events, full.n_users, data.cutoff_ts - data.window * protocols.DAY, data.window)
    inner_cold = protocols.cold_items(full.events, full.n_users, full.n_items, data.cutoff_ts - data.window * protocols.DAY,
                                      data.window)
    first = data.cutoff.date()
    days = [first + dt.timedelta(days=d) for d in range(data.window) if first + dt.timedelta(days=d) <= data.ds]
    rows, fits = [], []
    for seed in seeds:
        s = settings.model_copy(deep=True)
        s.train.seed = seed
        rec = zoo.sequence_models(s, ablations=False)[0]
        started = time.perf_counter()
        fit_sequence(rec, full, inner.train, inner, outer.train, "ndcg_10", True, inner_ctr, inner_cold,
                     settings.evaluation.cold_taste_weight_grid, settings.evaluation.cold_taste_k,
                     settings.evaluation.audience_activity_grid, settings.scoring.popular_days)
        if rerank_pairs:
            # The version's cross-encoder, as the training job fits it, with more pairs than the CPU default.
            rec = Reranked(rec, s.rerank, s.text, s.model.encoder, rec.device, seed, max_pairs=rerank_pairs)
            rec.fit(full, outer.train)
        fits.append(round(time.perf_counter() - started, 1))
        state = rec.export()
        started = time.perf_counter()
        for day in days:
            for row in replay_day(s, state, full, day, fresh_n):
                rows.append({**row, "seed": seed})
        log.info("seed %d: fitted in %.0fs, %d user-days replayed in %.0fs", seed, fits[-1], len(rows), time.perf_counter() - started)
    return {"dataset": data.title, "seeds": seeds, "fresh": fresh_n, "fit_s": fits, "rerank_pairs": rerank_pairs, "days": [str(days[0]), str(days[-1])],
            "summary": summarize(rows), "rows": rows}


def summarize(rows: list[dict]) -> dict:
    out = {}
    for group, keep in (("all", lambda r: True), ("warm", lambda r: r["warm"]), ("new", lambda r: not r["warm"])):
        sel = [r for r in rows if keep(r)]
        if not sel:
            continue
        block = {"user_days": len(sel) // max(1, len({r["seed"] for r in sel})), "users": len({r["user"] for r in sel})}
        for metric in ("ndcg", "hr"):
            for name in LISTS:
                block[f"{metric}_{name}"] = float(np.mean([r[f"{metric}_{name}"] for r in sel]))
        for other in ("nightly", "nightly_unseen"):
            a = np.array([r["ndcg_refreshed"] for r in sel])
            b = np.array([r[f"ndcg_{other}"] for r in sel])
            mean, lo, hi = paired_bootstrap(a, b)
            block[f"vs_{other}"] = {"ratio": float(a.mean() / b.mean()) if b.mean() else float("inf"), "diff": mean, "ci": [lo, hi]}
        out[group] = block
    return out


def quality_table(res: dict) -> str:
    lines = ["| users | user-days | NDCG@10 nightly | nightly minus today's items | refreshed | refreshed / nightly (95% CI of the difference) "
             "| refreshed / nightly minus today's (CI) | HR@10 nightly / minus today's / refreshed |", "|---|---|---|---|---|---|---|---|"]
    for group, b in res["summary"].items():
        vs, vu = b["vs_nightly"], b["vs_nightly_unseen"]
        lines.append(f"| {group} | {b['user_days']:,} | {b['ndcg_nightly']:.4f} | {b['ndcg_nightly_unseen']:.4f} | {b['ndcg_refreshed']:.4f} "
                     f"| {vs['ratio']:.2f}x ({vs['ci'][0]:+.4f}, {vs['ci'][1]:+.4f}) | {vu['ratio']:.2f}x ({vu['ci'][0]:+.4f}, {vu['ci'][1]:+.4f}) "
                     f"| {b['hr_nightly']:.3f} / {b['hr_nightly_unseen']:.3f} / {b['hr_refreshed']:.3f} |")
    return "\n".join(lines)


# -- cost ------------------------------------------------------------------------------------
def cost_home(work: Path, source: Path, prev: dt.date) -> Path:
    """A home with the source lake's snapshots and clean events up to ``prev``."""
    home = work / "refresh-home"
    if home.exists():
        shutil.rmtree(home)
    for table in ("clean_events", "items", "users", "sequences"):
        for part in sorted((source / "lake" / table).glob("ds=*")):
            if dt.date.fromisoformat(part.name[3:]) <= prev:
                shutil.copytree(part, home / "lake" / table / part.name)
    return home


def write_day(settings, ds: dt.date, n_users: int, seed: int = 0) -> None:
    from llmrec_core.data.snapshot import load_snapshot as snapshot

    prev = snapshot(settings, ds - dt.timedelta(days=1))
    rng = np.random.default_rng(seed)
    part = settings.raw_table("events") / f"ds={ds}"
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    known = prev.user_ids.astype(str)
    users = [known[u] if u < len(known) else f"new-{u}" for u in range(n_users)]
    items = prev.item_ids.astype(str)
    with open(part / "part-0.jsonl", "w", encoding="utf-8") as f:
        for n, user in enumerate(users):
            base = day_start(ds) + int(rng.integers(0, 12 * 3600))
            for j, item in enumerate(rng.choice(items, size=5, replace=False)):
                etype = ("view", "click", "view", "add_to_cart", "purchase")[j]
                stamp = dt.datetime.fromtimestamp(base + 40 * j, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                f.write(json.dumps({"event_id": f"b{n}-{j}", "user_id": user, "item_id": item, "event_type": etype, "ts": stamp}) + "\n")


def cost(work: Path, sizes: list[int], latency_users: int) -> dict:
    import os

    from jobs import refresh, train
    from llmrec_core.io.spark import get_spark

    data = DATASETS["synthetic"]
    ds = data.ds
    prev = ds - dt.timedelta(days=1)
    home = cost_home(work, work / "synthetic-home", prev)
    os.environ["LLMREC_HOME"] = str(home)
    settings = load_settings()
    settings.train.epochs, settings.train.patience = 1, 1
    settings.tracking.gate_baselines = ["popularity"]
    settings.evaluation.als_rank_grid, settings.evaluation.als_reg_grid, settings.evaluation.als_alpha_grid = [16], [0.05], [10.0]
    t0 = time.perf_counter()
    spark = get_spark(settings.spark, "llmrec-refresh-bench")  # a cold JVM: what the job pays first
    spark.range(1).count()
    jvm = time.perf_counter() - t0
    started = time.perf_counter()
    version = str(train.run(settings, prev, progress=False)["version"])  # the language model's version, promoted or not
    trained = time.perf_counter() - started
    out = {"jvm_start_s": round(jvm, 1), "train_s": round(trained, 1), "model_version": version, "runs": {}}
    for n in sizes:
        write_day(settings, ds, n)
        record = refresh.run(settings, ds, model_version=version, spark=spark, force=True, forced_by="refresh benchmark")
        out["runs"][n] = {"seconds": record["seconds"], "users": record["behaviours"]["users"], "rows": record["rows"],
                          "lines": record["lines"]["read"]}
        log.info("%d active users: %s", n, record["seconds"])
    ns = np.array(sizes, float)
    totals = np.array([out["runs"][n]["seconds"]["total"] - out["runs"][n]["seconds"]["spark_start"] for n in sizes])
    slope, intercept = np.polyfit(ns, totals, 1) if len(sizes) > 1 else (totals[0] / ns[0], 0.0)
    out["fixed_s"], out["per_user_ms"] = round(float(intercept), 2), round(float(slope) * 1000, 3)
    out["latency"] = per_user_latency(settings, ds, latency_users, version)
    return out


def per_user_latency(settings, ds: dt.date, n: int, version: str) -> dict:
    """The ranking step for one user at a time (user vector, candidates, re-rank, reasons): p50 and p99."""
    from jobs.score import load_version
    from llmrec_core.etl.intraday import clean_so_far
    from llmrec_core.io.spark import get_spark

    prev = ds - dt.timedelta(days=1)
    _, bundle = load_version(settings, version, prev, force=True)
    assert bundle.meta.get("model", "llmrec") == "llmrec", bundle.meta
    so_far = clean_so_far(get_spark(settings.spark, "llmrec-refresh-bench"), settings, ds)
    fd = with_fresh(settings, load_snapshot(settings, prev), so_far.events)
    out = {}
    for mode, head in (("no cross-encoder", None), ("cross-encoder", bundle.reranker)):
        if mode == "cross-encoder" and head is None:
            continue
        rec = restore(bundle.model, fd.snap, "cpu", reranker=head, text=settings.text)
        _, sc = fresh_lists(settings, dataclasses.replace(fd, users=fd.users[:1]), rec, fd.snap.item_available, day_start(ds) + 43200)
        times = []
        for u in fd.users[:n]:
            started = time.perf_counter()
            engine.recommend(np.array([u]), sc)
            times.append(time.perf_counter() - started)
        ms = np.array(times) * 1000
        out[mode] = {"users": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}
    return out


def cost_table(res: dict) -> str:
    lines = ["| active users | raw lines | start (settings, model, snapshot) | clean (Spark) | restore | rank | publish | total without JVM start |",
             "|---|---|---|---|---|---|---|---|"]
    for n, r in res["runs"].items():
        s = r["seconds"]
        lines.append(f"| {int(n):,} | {r['lines']:,} | {s['start']:.1f} s | {s['clean']:.1f} s | {s['restore']:.1f} s | {s['rank']:.1f} s "
                     f"| {s['publish']:.1f} s | **{s['total'] - s['spark_start']:.1f} s** |")
    lat = "; ".join(f"{mode}: p50 {v['p50_ms']} ms, p99 {v['p99_ms']} ms over {v['users']} users" for mode, v in res["latency"].items())
    return "\n".join(lines + ["", f"JVM start (excluded above): {res['jvm_start_s']} s. Fitted over N: {res['fixed_s']} s fixed + "
                                  f"{res['per_user_ms']} ms per active user. Ranking step, one user at a time: {lat}."])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["quality", "cost"])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="movielens-100k")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--fresh", type=int, default=3, help="fresh behaviours per user-day")
    parser.add_argument("--users", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--rerank-pairs", type=int, default=0,
                        help="quality: also fit the cross-encoder on this many pairs; both lists are then re-ranked")
    parser.add_argument("--latency-users", type=int, default=300)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "_work")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    path = args.work / "refresh.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    started = time.perf_counter()
    when = time.strftime("%Y-%m-%d", time.gmtime())
    command = " ".join(["benchmarks/refresh.py", *sys.argv[1:]])
    if args.what == "quality":
        res = quality(lake_settings(load_settings(), DATASETS[args.dataset]), DATASETS[args.dataset], args.seeds, args.fresh, args.rerank_pairs)
        key = f"refresh-{args.dataset}" + ("-rerank" if args.rerank_pairs else "")
        title = f"Intraday refresh quality ({res['dataset']}{', with the cross-encoder' if args.rerank_pairs else ''})"
        body = quality_table(res)
        info = (f"Days {res['days'][0]}..{res['days'][1]}, {res['fresh']} fresh behaviours per user-day, seeds {res['seeds']} "
                f"(user-days pooled over seeds for the interval; fits {res['fit_s']} s). "
                + (f"Nightly and refreshed lists both re-ranked by a cross-encoder fitted on {args.rerank_pairs} pairs: over the "
                   "newest behaviours as text for the nightly list, over today's behaviours for the refreshed one. " if args.rerank_pairs else
                   "No cross-encoder (`refresh.rerank: auto` on a CPU). "))
    else:
        res = cost(args.work, args.users, args.latency_users)
        key, title, body, info = "refresh-cost", "Intraday refresh cost", cost_table(res), ""
    res.update({"machine": machine(), "date": when, "command": command, "wall_s": round(time.perf_counter() - started, 1)})
    saved[key] = res
    args.work.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=2, default=float))
    print(body)
    if not args.no_write:
        write_section(key, title, f"Machine: {res['machine']}. Run: {when}, `.venv/bin/python {command}`, {res['wall_s']} s. {info}\n\n{body}")


if __name__ == "__main__":
    main()
