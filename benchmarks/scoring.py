"""Scoring throughput: llmrec's exact blocked top-K against Spark MLlib ALS ``recommendForAllUsers``.

    .venv/bin/python benchmarks/scoring.py [--sizes 10000x5000,100000x20000,1000000x50000]
                                           [--dim 64] [--k 50] [--als-timeout 1200]

For each size (users x items) both scorers get random factor vectors of the same rank and
produce the top K items of every user; each runs in a fresh child process so its peak memory
(the whole process tree, JVM included) is its own.

- llmrec: ``llmrec_core.topk.blocked_topk`` (torch, all cores), excluding 20 already-seen
  items per user, default blocks (4096 users x 65536 items).
- ALS: an ``ALSModel`` of the same rank (fitted for one iteration on one rating per user, so
  every user and item has factors), then ``recommendForAllUsers(K)`` written to the ``noop``
  sink, on ``local[*]``. ALS excludes nothing. Only the recommendation step is timed.

Results: ``benchmarks/_work/scoring.json`` and the ``scoring`` section of ``benchmarks/RESULTS.md``.

``--audience`` times an item's audience instead (the top K users of every item, what
``item_audience`` holds), both ways the language model can rank it: by the click logit alone
(``blocked_topk`` over items x users) and by a return rate times p(click) (``joint_topk``: one
``blocked_topk`` per bucket of return rates, ten of them, merged), into the ``scoring-audience``
section.

``--content`` times the content baseline's lists (each user's taste from 20 behaviours, then the
top K items, in the nightly engine's blocks of 4096 users) at the packaged encoder's width
(``--dim 384``): by its fast path (one sparse product for the tastes, then ``blocked_topk``) and,
where ``--generic-sizes`` says, by the generic path every recommender has (a dense block of
scores per 512 users, then a top K of each row), into the ``scoring-content`` section.

``--cold-taste`` times the language model's lists with and without new items ranked with the
users' taste (``model.cold_taste_weight`` 2 against 0), a twentieth of the catalogue new, text
vectors 384 wide, in the engine's blocks of 4096 users, into the ``scoring-cold-taste`` section.
The model's own ``recommend`` runs; only its user tower is replaced by random user vectors (it
costs the same either way).

``--audience-share`` times the model's own ``audience`` the two ways ``model.audience`` ranks it
(``click``: return rate x p(click); ``share``: return rate x activity x p(item | user), which
needs the softmax's normaliser over the whole catalogue for every user), over the engine's blocks
of users, merged, into the ``scoring-audience-share`` section.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, measure, write_section  # noqa: E402

SEEN_PER_USER = 20
TEXT_DIM, NEW_SHARE = 384, 0.05  # --cold-taste: the text vectors' width, the share of new items


def child_llmrec(users: int, items: int, dim: int, k: int) -> dict:
    import numpy as np
    import torch

    from llmrec_core.topk import blocked_topk

    gen = torch.Generator().manual_seed(0)
    u = torch.randn(users, dim, generator=gen)
    v = torch.randn(items, dim, generator=gen)
    rng = np.random.default_rng(0)
    seen = (np.arange(users + 1, dtype=np.int64) * SEEN_PER_USER, rng.integers(0, items, users * SEEN_PER_USER))
    start = time.perf_counter()
    scores, top = blocked_topk(u, v, k, exclude=seen)
    seconds = time.perf_counter() - start
    assert top.shape == (users, k) and (top >= 0).all()
    return {"seconds": seconds}


def _histories(users: int, items: int):
    """``SEEN_PER_USER`` random behaviours per user (a tenth of them dislikes, a tenth unlabelled)."""
    import numpy as np

    from llmrec_core.data.interactions import Interactions
    from llmrec_core.recommenders.base import History

    rng = np.random.default_rng(0)
    n = users * SEEN_PER_USER
    events = Interactions(user=np.repeat(np.arange(users, dtype=np.int32), SEEN_PER_USER),
                          item=rng.integers(0, items, n).astype(np.int32), kind=np.ones(n, np.int16),
                          label=rng.choice(np.array([1, 0, -1], np.int8), n, p=[0.8, 0.1, 0.1]),
                          ts=np.tile(np.arange(SEEN_PER_USER, dtype=np.int64), users), value=np.full(n, np.nan, np.float32),
                          event_type=np.full(n, "rating", dtype=object))
    return History.of(events, users)


def child_content(users: int, items: int, dim: int, k: int, fast: bool) -> dict:
    import numpy as np

    from llmrec_core.recommenders.base import Recommender
    from llmrec_core.recommenders.content import ContentTaste
    from llmrec_core.topk import unit_rows

    rng = np.random.default_rng(0)
    history = _histories(users, items)
    rec = ContentTaste("none", 16, 8, 0, half_life=20.0, negative_weight=0.0)
    vectors = unit_rows(rng.standard_normal((items, dim)).astype(np.float32))
    rec.vectors_ = (vectors - vectors.mean(axis=0)).astype(np.float32)
    recommend = rec.recommend if fast else lambda *a, **kw: Recommender.recommend(rec, *a, **kw)
    block, asof = 4096, np.full(users, SEEN_PER_USER, np.int64)
    start = time.perf_counter()
    for s in range(0, users, block):
        scores, top = recommend(np.arange(s, min(users, s + block)), history, asof[s : s + block], k)
        assert (top >= 0).all()
    return {"seconds": time.perf_counter() - start}


def _random_llm(users: int, items: int, dim: int, **settings):
    """The language model's recommender with random item, text and user vectors (its user tower
    replaced: it costs the same whatever follows), ``NEW_SHARE`` of the items known by text only."""
    import numpy as np
    import torch

    from llmrec_core.recommenders.llm import LlmRecommender
    from llmrec_core.settings import ModelSettings, TrainSettings

    gen = torch.Generator().manual_seed(0)
    U = torch.nn.functional.normalize(torch.randn(users, dim, generator=gen), dim=1)

    class RandomUsers(LlmRecommender):
        def all_user_vectors(self, users, history, asof):
            return U[torch.from_numpy(np.asarray(users, np.int64))]

        def _scale_bias(self):
            return 10.0, -2.0

    rec = RandomUsers(ModelSettings(encoder="random:32x1", **settings), TrainSettings(device="cpu"))
    rec._cache = torch.nn.functional.normalize(torch.randn(items, dim, generator=gen), dim=1)
    rec.item_text_ = torch.nn.functional.normalize(torch.randn(items, TEXT_DIM, generator=gen), dim=1)
    rec.text_mean_ = rec.item_text_.mean(0, keepdim=True)
    rec.known_ = torch.rand(items, generator=gen) >= NEW_SHARE
    return rec


def child_cold_taste(users: int, items: int, dim: int, k: int, weight: float) -> dict:
    import numpy as np

    rec = _random_llm(users, items, dim, cold_taste_weight=weight)
    history = _histories(users, items)
    block, asof = 4096, np.full(users, SEEN_PER_USER, np.int64)
    start = time.perf_counter()
    for s in range(0, users, block):
        scores, top = rec.recommend(np.arange(s, min(users, s + block)), history, asof[s : s + block], k)
        assert (top >= 0).all()
    return {"seconds": time.perf_counter() - start}


def child_model_audience(users: int, items: int, dim: int, k: int, audience: str) -> dict:
    """The model's own ``audience`` over every user, in the engine's blocks of 4096 users merged as
    the engine merges them, with return rates in ten buckets (users last seen 0 to 300 days
    before) and the taste blend of new items on (w = 2)."""
    import numpy as np

    from llmrec_core.recommenders import returning
    from llmrec_core.topk import merge_top

    rec = _random_llm(users, items, dim, cold_taste_weight=2.0, audience=audience)
    rec.returns_ = returning.ReturnRates(7, np.linspace(0.6, 0.02, returning.NO_HISTORY + 1))
    history = _histories(users, items)
    asof = SEEN_PER_USER + np.random.default_rng(1).integers(0, 300 * returning.DAY, users)
    block, found = 4096, []
    start = time.perf_counter()
    for s in range(0, users, block):
        scores, top = rec.audience(np.arange(s, min(users, s + block)), history, asof[s : s + block], k)
        found.append((scores, np.where(top >= 0, top + s, -1)))
        found = [merge_top(found, k)]
    assert (found[0][1] >= 0).all()
    return {"seconds": time.perf_counter() - start}


def child_audience(users: int, items: int, dim: int, k: int, joint: bool) -> dict:
    import numpy as np
    import torch

    from llmrec_core.topk import blocked_topk, joint_topk

    gen = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(users, dim, generator=gen), dim=1)
    v = torch.nn.functional.normalize(torch.randn(items, dim, generator=gen), dim=1)
    rng = np.random.default_rng(0)
    # Each item's users who engaged with it: SEEN_PER_USER per user, by item.
    engaged = (np.arange(items + 1, dtype=np.int64) * (users * SEEN_PER_USER // items), rng.integers(0, users, items * (users * SEEN_PER_USER // items)))
    # Return rates take one value per bucket of days since the last behaviour: ten of them.
    log_return = np.log(rng.choice(np.linspace(0.01, 0.5, 10), users))
    start = time.perf_counter()
    if joint:
        scores, top = joint_topk(v, u, log_return, k, exclude=engaged, scale=3.0, bias=1.0)
    else:
        scores, top = blocked_topk(v, u, k, exclude=engaged, scale=3.0, bias=1.0)
    seconds = time.perf_counter() - start
    assert top.shape == (items, k) and (top >= 0).all()
    return {"seconds": seconds}


def child_als(users: int, items: int, dim: int, k: int) -> dict:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = (SparkSession.builder.master("local[*]").appName("als-bench").config("spark.driver.memory", "12g")
             .config("spark.driver.bindAddress", "127.0.0.1").config("spark.ui.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    ratings = spark.range(users).select(F.col("id").cast("int").alias("user"), (F.col("id") % items).cast("int").alias("item"),
                                        F.lit(1.0).alias("rating"))
    model = ALS(rank=dim, maxIter=1, implicitPrefs=True, seed=0, userCol="user", itemCol="item", ratingCol="rating").fit(ratings)
    model.userFactors.cache().count()
    model.itemFactors.cache().count()
    start = time.perf_counter()
    model.recommendForAllUsers(k).write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - start
    spark.stop()
    return {"seconds": seconds}


def run_one(kind: str, users: int, items: int, dim: int, k: int, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--child", kind, f"{users}x{items}", "--dim", str(dim), "--k", str(k)]
    try:
        if kind == "als":
            cmd = ["timeout", str(int(timeout)), *cmd]
        out = measure(cmd, env)
    except SystemExit as err:
        if "failed (124)" in str(err):
            return {"seconds": None, "timeout_s": timeout}
        raise
    result = json.loads(out["stdout"].strip().splitlines()[-1])
    result.update(peak_rss_gib=out["peak_rss_gib"], wall_s=out["wall_s"], pairs_per_s=users * items / result["seconds"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000x5000,100000x20000,1000000x50000")
    parser.add_argument("--dim", type=int, help="vector width (default 64; 384, the packaged encoder's, with --content)")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--als-timeout", type=float, default=1200)
    parser.add_argument("--audience", action="store_true", help="time an item's audience (click alone, return x click)")
    parser.add_argument("--content", action="store_true", help="time the content baseline's lists (fast and generic paths)")
    parser.add_argument("--generic-sizes", default="10000x5000,100000x20000", help="the sizes --content also times the generic path at")
    parser.add_argument("--cold-taste", action="store_true", help="time the model's lists with new items ranked with the users' taste")
    parser.add_argument("--audience-share", action="store_true", help="time the model's audience by p(click) and by share")
    parser.add_argument("--child", choices=["llmrec", "als", "click", "joint", "content", "content-generic", "cold-taste", "cold-taste-off",
                                            "audience-click", "audience-share"])
    parser.add_argument("size", nargs="?")
    args = parser.parse_args()
    args.dim = args.dim or (384 if args.content else 64)
    if args.child:
        users, items = map(int, args.size.split("x"))
        children = {"llmrec": child_llmrec, "als": child_als,
                    "click": lambda *a: child_audience(*a, joint=False), "joint": lambda *a: child_audience(*a, joint=True),
                    "content": lambda *a: child_content(*a, fast=True), "content-generic": lambda *a: child_content(*a, fast=False),
                    "cold-taste-off": lambda *a: child_cold_taste(*a, weight=0.0), "cold-taste": lambda *a: child_cold_taste(*a, weight=2.0),
                    "audience-click": lambda *a: child_model_audience(*a, audience="click"),
                    "audience-share": lambda *a: child_model_audience(*a, audience="share")}
        print(json.dumps(children[args.child](users, items, args.dim, args.k)))
        return
    if args.audience:
        audience(args)
        return
    if args.content:
        content(args)
        return
    if args.cold_taste:
        cold_taste(args)
        return
    if args.audience_share:
        audience_share(args)
        return
    rows = []
    for size in args.sizes.split(","):
        users, items = map(int, size.split("x"))
        for kind in ("llmrec", "als"):
            r = run_one(kind, users, items, args.dim, args.k, args.als_timeout)
            rows.append({"scorer": kind, "users": users, "items": items, **r})
            print(json.dumps(rows[-1]), flush=True)
    work = ROOT / "benchmarks" / "_work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "scoring.json").write_text(json.dumps(rows, indent=2))
    write_section("scoring", "Scoring throughput", table(rows, args))


def audience(args) -> None:
    intro = (f"Machine: {machine()}; no GPU. Commit {_commit()}. d = {args.dim}, K = {args.k} users per item, "
             f"{SEEN_PER_USER} engaged items per user excluded; `python benchmarks/scoring.py --audience --sizes {args.sizes} "
             f"--dim {args.dim} --k {args.k}`.")
    paired(args, {"click": "click logit (`blocked_topk`)", "joint": "return rate x p(click) (`joint_topk`)"}, None,
           key="scoring-audience", title="Audience throughput", intro=intro, column="audience ranked by",
           ratio_column="against the click alone", digits=2)


def content(args) -> None:
    intro = (f"Machine: {machine()}; no GPU. Commit {_commit()}. d = {args.dim}, K = {args.k}, {SEEN_PER_USER} behaviours per "
             f"user (a tenth of them dislikes), half-life 20, dislikes left out; `python benchmarks/scoring.py --content --sizes "
             f"{args.sizes} --generic-sizes {args.generic_sizes} --dim {args.dim} --k {args.k}`.")
    paired(args, {"content": "fast (tastes, then `blocked_topk`)", "content-generic": "generic (dense scores, then top K)"},
           set(args.generic_sizes.split(",")) if args.generic_sizes else set(), key="scoring-content",
           title="The content baseline's lists", intro=intro, column="path", ratio_column="speed-up of the fast path", digits=1)


def cold_taste(args) -> None:
    intro = (f"Machine: {machine()}; no GPU. Commit {_commit()}. d = {args.dim} (the model's vectors), {TEXT_DIM} (the text "
             f"vectors), K = {args.k}, {NEW_SHARE:.0%} of the items new, {SEEN_PER_USER} behaviours per user; `python "
             f"benchmarks/scoring.py --cold-taste --sizes {args.sizes} --dim {args.dim} --k {args.k}`.")
    paired(args, {"cold-taste-off": "the model alone (w = 0)", "cold-taste": "new items with the taste (w = 2)"}, None,
           key="scoring-cold-taste", title="New items ranked with the users' taste: the cost", intro=intro,
           column="lists", ratio_column="against the model alone", digits=2)


def audience_share(args) -> None:
    intro = (f"Machine: {machine()}; no GPU. Commit {_commit()}. d = {args.dim}, K = {args.k} users per item, "
             f"{SEEN_PER_USER} behaviours per user, {NEW_SHARE:.0%} of the items new (blended with the users' taste, w = 2), "
             f"return rates in ten buckets; `python benchmarks/scoring.py --audience-share --sizes {args.sizes} --dim {args.dim} "
             f"--k {args.k}`.")
    paired(args, {"audience-click": "return rate x p(click) (`model.audience: click`)",
                  "audience-share": "return rate x activity x share of the user's next behaviour (`share`)"}, None,
           key="scoring-audience-share", title="An item's audience by share: the cost", intro=intro, column="audience ranked by",
           ratio_column="against click", digits=2)


def paired(args, kinds: dict[str, str], second_at: set[str] | None, *, key: str, title: str, intro: str, column: str,
           ratio_column: str, digits: int) -> None:
    """Time two children at each size (the second only at the sizes of ``second_at``, at every
    size when None), each in its own process, and write the ``key`` section: one row per run,
    named by ``kinds``, the second's seconds against the first's."""
    first, second = kinds
    rows = []
    for size in args.sizes.split(","):
        users, items = map(int, size.split("x"))
        for kind in (first, second) if second_at is None or size in second_at else (first,):
            rows.append({"kind": kind, "users": users, "items": items, **run_one(kind, users, items, args.dim, args.k, 0)})
            print(json.dumps(rows[-1]), flush=True)
    lines = [intro, "", f"| users x items | {column} | s | pairs/s | peak RSS GiB | {ratio_column} |", "|---|---|---:|---:|---:|---:|"]
    base = {(r["users"], r["items"]): r["seconds"] for r in rows if r["kind"] == first}
    for r in rows:
        ratio = f"{r['seconds'] / base[(r['users'], r['items'])]:.{digits}f}x" if r["kind"] == second else ""
        lines.append(f"| {r['users']:,} x {r['items']:,} | {kinds[r['kind']]} | {r['seconds']:.1f} | {r['pairs_per_s']:.3g} | "
                     f"{r['peak_rss_gib']:.2f} | {ratio} |")
    write_section(key, title, "\n".join(lines))


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def table(rows: list[dict], args) -> str:
    lines = [f"Machine: {machine()}; no GPU. Commit {_commit()}. d = {args.dim}, K = {args.k}; "
             f"`python benchmarks/scoring.py` (`make scoring-bench`).", "",
             "| users x items | scorer | scoring s | pairs/s | peak RSS GiB (process tree) | speed-up vs ALS |",
             "|---|---|---:|---:|---:|---:|"]
    by = {(r["users"], r["items"], r["scorer"]): r for r in rows}
    for r in rows:
        als = by.get((r["users"], r["items"], "als"), {})
        if r["seconds"] is None:
            lines.append(f"| {r['users']:,} x {r['items']:,} | {r['scorer']} | did not finish in {r['timeout_s']:.0f} s | - | - | |")
            continue
        if r["scorer"] == "llmrec" and als.get("seconds"):
            speed = f"{als['seconds'] / r['seconds']:.1f}x"
        elif r["scorer"] == "llmrec" and als:
            speed = f"> {als['timeout_s'] / r['seconds']:.1f}x"
        else:
            speed = ""
        lines.append(f"| {r['users']:,} x {r['items']:,} | {r['scorer']} | {r['seconds']:.1f} | {r['pairs_per_s']:.3g} | "
                     f"{r['peak_rss_gib']:.2f} | {speed} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
