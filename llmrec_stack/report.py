"""What ``llmrec pipeline`` prints when the three DAGs succeeded: a few users' recommendations
read back from the warehouse, the MLflow validation table of the training run, the intraday
refresh, where the UIs are."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.dataset as pads

from llmrec_core.io import lake, tracking
from llmrec_core.serving import lookup
from llmrec_core.settings import Settings, redact_url

COLUMNS = ("ndcg_10", "recall_20", "recall_20_cold_users", "auc", "coverage_10")


def some_users(settings: Settings, ds: dt.date, n: int) -> list[str]:
    """The first ``n`` user IDs of the day's snapshot, numerically when they are numbers."""
    ids = pads.dataset(lake.partition(settings.lake_table("users"), ds), format="parquet").to_table(columns=["user_id"])["user_id"].to_pylist()
    return numbers_first(ids)[:n]


def numbers_first(ids: list[str]) -> list[str]:
    """IDs of ASCII digits in numeric order, then the rest in text order. ("²".isdigit() is
    true and int("²") fails: any id is fine here.)"""
    numeric = lambda u: u.isascii() and u.isdigit()  # noqa: E731
    return sorted(ids, key=lambda u: (not numeric(u), int(u) if numeric(u) else 0, u))


def metrics_table(settings: Settings, ds: dt.date) -> str:
    found = tracking.training_results(settings, ds.isoformat())
    if found is None:
        return f"no training run for {ds} in {redact_url(settings.tracking_uri)}"
    run_id, results = found
    lines = [f"MLflow training run {run_id} ({redact_url(settings.tracking_uri)}), validation metrics:",
             f"  {'model':16s}" + "".join(f"{c:>22s}" for c in COLUMNS)]
    for name in sorted(results, key=lambda m: -results[m].get("ndcg_10", float("-inf"))):
        lines.append(f"  {name:16s}" + "".join(f"{results[name].get(c, float('nan')):>22.4f}" for c in COLUMNS))
    return "\n".join(lines)


def task_result(settings: Settings, ds: dt.date, task_id: str) -> str:
    """One line on what a finished task of the three DAGs did, read from what it left behind:
    the run summaries of the lake, the MLflow training run, the warehouse. Empty when the task
    leaves nothing to report (sensors, checks)."""
    from llmrec_core.io.warehouse import Warehouse

    if task_id == "clean_logs":
        s = lake.read_run_summary(settings.runs_dir, "clean_logs/events", ds)
        return s and (f"events of {ds}: {s['read']:,} read, {s['clean']:,} clean, {s['quarantined']:,} quarantined, "
                      f"{s['duplicates']:,} duplicates")
    if task_id == "build_sequences":
        s = lake.read_run_summary(settings.runs_dir, "build_sequences", ds)
        return s and "snapshot of " + ", ".join(f"{k} {v:,}" for k, v in s.items() if isinstance(v, int))
    if task_id == "train":
        found = tracking.training_results(settings, ds.isoformat())
        if found is None:
            return ""
        ndcg = {name: m["ndcg_10"] for name, m in found[1].items() if "ndcg_10" in m}
        best = max(ndcg, key=ndcg.get, default=None)
        llm = f"llmrec {ndcg['llmrec']:.4f}, " if "llmrec" in ndcg else ""
        return best and f"validation NDCG@10: {llm}best {best} {ndcg[best]:.4f}"
    if task_id in ("champion", "champion_exists"):
        return serving_line(settings)
    if task_id == "score":
        with Warehouse.open(settings) as wh:
            counts = wh.counts(ds)
        return counts and "published " + ", ".join(f"{k} {v:,}" for k, v in counts.items())
    return ""


def serving_line(settings: Settings) -> str:
    """Which registered version the nightly lists come from, which model it is, and why."""
    t = settings.tracking
    tracking.setup(settings)
    current = tracking.champion(settings)
    if current is None:
        return f"no {t.registered_model}@{t.champion_alias} yet: nothing was promoted"
    return (f"Serving {t.registered_model}@{t.champion_alias} = version {current.version} "
            f"({current.tags.get('model', 'llmrec')}), {current.tags.get('promotion', '')}")


def refresh_line(settings: Settings, ds: dt.date) -> str:
    """The intraday refresh: when it runs, what it last did, and how to run it by hand."""
    every = settings.orchestration.refresh_every_minutes
    head = (f"Intraday: DAG llmrec_refresh runs every {every} min on the day in progress and re-ranks the lists of "
            "users who acted today (table user_recommendations_fresh, view user_recommendations_current).")
    records = sorted((settings.runs_dir / "refresh").glob("ds=*.json"))
    record = json.loads(records[-1].read_text(encoding="utf-8")) if records else None
    if record:
        head += (f"\n  last refresh: {record['ds']} at {record['refreshed_at']}, {record['behaviours']['users']:,} users, "
                 f"{record['rows']:,} rows, {record['seconds']['total']:.1f}s")
    nxt = ds + dt.timedelta(days=1)
    return head + f"\n  by hand, once events of {nxt} land in raw/events/ds={nxt}: llmrec refresh --ds {nxt} [--until {nxt}T12:00:00Z]"


def summary(settings: Settings, ds: dt.date, users: int = 3, k: int = 5) -> str:
    parts = [lookup(settings, "recommend", u, ds, k) for u in some_users(settings, ds, users)]
    parts.append(serving_line(settings) + "\n" + metrics_table(settings, ds))
    parts.append(refresh_line(settings, ds))
    home = settings.home
    parts.append("\n".join([
        "Next:",
        "  make up      # Airflow UI http://127.0.0.1:8080 (user admin, password in "
        f"{home / 'airflow' / 'passwords.json'}),",
        f"               # MLflow UI http://127.0.0.1:5000 (user admin, password in {home / 'mlflow-auth' / 'admin_password'})",
        f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{home / 'warehouse.duckdb'}', read_only=True)"
        ".sql('SELECT * FROM user_recommendations_latest LIMIT 10'))\"",
        "  make down    # stops them",
    ]))
    return "\n\n".join(parts)
