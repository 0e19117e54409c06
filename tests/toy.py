"""A small world with learnable structure, written as a real lake (Parquet) for model tests.

Items belong to one of four topics that show in their titles and genres; each user prefers
one topic (their occupation says which) and rates its items highly and others low. Some
items appear only in the last days (cold items) and some users only start then.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TOPICS = [
    ("Space", "Galaxy", "astronaut"),
    ("Cooking", "Kitchen", "chef"),
    ("Horror", "Haunted", "undertaker"),
    ("Sports", "Stadium", "coach"),
]
START = dt.date(2024, 1, 1)


def write_toy_lake(home: Path, *, days: int = 20, n_users: int = 60, n_items: int = 48, seed: int = 0,
                   profile_only: int = 0) -> dt.date:
    """Write clean_events, items and users for every day; returns the last day. ``profile_only``
    more users (``p0``, ``p1``, ...) have a profile from the first day and no events."""
    rng = np.random.default_rng(seed)
    item_topic = np.arange(n_items) % len(TOPICS)
    late_items = set(range(n_items - 4, n_items))  # first seen in the last 3 days
    user_topic = rng.integers(0, len(TOPICS), n_users)
    user_start = np.where(np.arange(n_users) % 6 == 0, days - 3, rng.integers(0, days // 2, n_users))
    rows = []
    for u in range(n_users):
        n = int(rng.integers(10, 18))
        for k in range(n):
            day = int(min(days - 1, user_start[u] + k * (days - user_start[u]) // n))
            pool = [i for i in range(n_items) if i not in late_items or day >= days - 3]
            liked = rng.random() < 0.8
            cands = [i for i in pool if (item_topic[i] == user_topic[u]) == liked]
            i = int(rng.choice(cands))
            ts = dt.datetime.combine(START + dt.timedelta(days=day), dt.time(), tzinfo=dt.UTC) + dt.timedelta(minutes=10 * k + 1)
            rows.append((f"e{u}-{k}", f"u{u}", f"i{i}", "rate", float(rng.integers(4, 6) if liked else rng.integers(1, 3)), ts, day))
    last = START + dt.timedelta(days=days - 1)
    lake = home / "lake"
    for day in range(days):
        ds = START + dt.timedelta(days=day)
        sel = [r for r in rows if r[6] == day]
        table = pa.table({
            "event_id": [r[0] for r in sel], "user_id": [r[1] for r in sel], "item_id": [r[2] for r in sel],
            "event_type": [r[3] for r in sel], "value": pa.array([r[4] for r in sel], pa.float64()),
            "ts": pa.array([r[5] for r in sel], pa.timestamp("us", tz="UTC")),
        })
        part = lake / "clean_events" / f"ds={ds}"
        part.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, part / "part-0.parquet")
        _snapshots(lake, ds, day, days, n_items, n_users, item_topic, late_items, user_topic, user_start, profile_only)
    return last


def _snapshots(lake, ds, day, days, n_items, n_users, item_topic, late_items, user_topic, user_start, profile_only=0):
    visible = [i for i in range(n_items) if i not in late_items or day >= days - 4]
    items = pa.table({
        "item_id": [f"i{i}" for i in visible],
        "title": [f"{TOPICS[item_topic[i]][1]} story {i}" for i in visible],
        "description": [f"A {TOPICS[item_topic[i]][0].lower()} tale." for i in visible],
        "categories": pa.array([[TOPICS[item_topic[i]][0]] for i in visible], pa.list_(pa.string())),
        "attributes": pa.array([[("kind", "story")] for _ in visible], pa.map_(pa.string(), pa.string())),
        "available": [True] * len(visible),
    })
    users_seen = [u for u in range(n_users) if user_start[u] <= day]
    users = pa.table({
        "user_id": [f"u{u}" for u in users_seen] + [f"p{j}" for j in range(profile_only)],
        "attributes": pa.array([[("occupation", TOPICS[user_topic[u]][2]), ("gender", "F")] for u in users_seen]
                               + [[("occupation", TOPICS[j % len(TOPICS)][2]), ("gender", "M")] for j in range(profile_only)],
                               pa.map_(pa.string(), pa.string())),
    })
    for name, table in (("items", items), ("users", users)):
        part = lake / name / f"ds={ds}"
        part.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, part / "part-0.parquet")


def interactions(rows: list[tuple[int, int, int, int]]):
    """Interactions from inline (user, item, label, ts) rows, in any order."""
    from llmrec_core.data.interactions import Interactions

    user, item, label, ts = (np.array(c) for c in zip(*rows, strict=True))
    n = len(rows)
    return Interactions(
        user=user.astype(np.int32), item=item.astype(np.int32), kind=np.ones(n, np.int16),
        label=label.astype(np.int8), ts=ts.astype(np.int64), value=np.full(n, np.nan, np.float32),
        event_type=np.array(["click"] * n, dtype=object),
    ).sorted()


def make_tiny(settings):
    """Settings for a tiny random-weight language model and short training (in place)."""
    settings.model.encoder = "random:32x2"
    settings.model.dim = 16
    settings.model.max_len = 8
    settings.model.max_text_tokens = 16
    settings.train.epochs = 3
    settings.train.patience = 2
    settings.train.batch_size = 16
    settings.train.lr = 0.005
    settings.train.negatives = 16
    settings.train.validation_days = 5
    settings.rerank.enabled = "on"  # a re-ranker in every tiny bundle, CPU or not
    settings.rerank.cpu_max_pairs = 40
    settings.rerank.top_n = 5
    settings.rerank.batch_size = 8
    settings.rerank.max_tokens = 48
    settings.evaluation.als_rank = 4
    settings.evaluation.als_iterations = 2
    # Baselines are tuned, but ALS (a Spark fit each) only over its configured values.
    settings.evaluation.als_rank_grid, settings.evaluation.als_reg_grid, settings.evaluation.als_alpha_grid = [4], [0.05], [10.0]
    return settings


def isolated_home(mp, home: Path) -> None:
    """Point LLMREC_HOME at ``home`` (a module-scoped MonkeyPatch) and drop every other llmrec
    or MLflow variable of the environment."""
    import os

    for name in list(os.environ):
        if (name.startswith("LLMREC_") or name == "MLFLOW_TRACKING_URI") and name != "LLMREC_HOME":
            mp.delenv(name)
    mp.setenv("LLMREC_HOME", str(home))


def train_champion(settings, day: dt.date) -> dict:
    """Train on ``day`` and leave the language model as the champion, for the tests of what
    serves one (scoring, the intraday refresh).

    Whether three epochs of a tiny random-weight model beat popularity on the toy's validation
    window is a coin toss that any change to the training's random draws turns over; the gate
    has tests of its own (tests/core/test_gate.py, tests/jobs/test_train_job.py). So no baseline
    is registered in its place, and a refused version is promoted here, as an operator would,
    with the gate's reason kept in its promotion tag."""
    from jobs import train
    from llmrec_core.io import tracking

    settings.tracking.serve_baseline_winner = False
    out = train.run(settings, day, progress=False)
    assert out["model"] == "llmrec" and out["champion"] in (None, out["version"]), out
    if not out["promoted"]:
        tracking.promote(settings, out["version"], f"by the test set-up; the gate said: {out['reason']}", expected=None)
    return out
