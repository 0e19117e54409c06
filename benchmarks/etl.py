"""ETL benchmark: synthetic ingest, Spark cleaning and sequences, and the same cleaning in DuckDB.

    .venv/bin/python benchmarks/etl.py [--sizes 1000000 10000000] [--work benchmarks/_work]

For each size, in a fresh LLMREC_HOME: generate the logs (30 days, 1% malformed lines, a few
bots), run ``jobs.clean_logs --all`` (one Spark application for the whole backfill), then
``jobs.build_sequences`` for the last day (what the nightly run does), then the DuckDB version of
the cleaning over the same files. Each step runs as its own process; peak memory is the largest
resident set of its whole process tree (Python driver plus JVM), sampled every 0.2 s.
Results go to ``<work>/etl-results.json`` and the table in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, measure, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def bench(size: int, work: Path) -> dict:
    home = work / f"etl-{size}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {**os.environ, "LLMREC_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1"}
    users, items = max(1000, size // 50), max(500, size // 200)
    gen = measure([PY, "-m", "llmrec_core.cli", "ingest", "synthetic", "--users", str(users), "--items", str(items),
                   "--events", str(size), "--days", "30", "--seed", "42", "--bad-rate", "0.01", "--bots", "3"], env)
    raw_bytes = sum(f.stat().st_size for f in (home / "raw" / "events").rglob("*.jsonl"))
    clean = measure([PY, "-m", "jobs.clean_logs", "--all"], env)
    runs = home / "lake" / "_runs" / "clean_logs" / "events"
    summaries = [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]
    counts = {k: sum(s[k] for s in summaries) for k in ("read", "clean", "quarantined", "duplicates")}
    last = sorted(p.name for p in (home / "raw" / "events").iterdir())[-1].removeprefix("ds=")
    seqs = measure([PY, "-m", "jobs.build_sequences", "--ds", last], env)
    duck_out = home / "duckdb"
    duck_out.mkdir()
    duck = measure([PY, "benchmarks/duckdb_clean.py", str(home / "raw" / "events"), str(duck_out)], env)
    duck_counts = json.loads(duck["stdout"])
    result = {
        "events": size,
        "raw_mib": round(raw_bytes / 2**20, 1),
        "generate": {k: gen[k] for k in ("wall_s", "peak_rss_gib")},
        "spark_clean": {k: clean[k] for k in ("wall_s", "peak_rss_gib")},
        "spark_sequences_last_day": {k: seqs[k] for k in ("wall_s", "peak_rss_gib")},
        "duckdb_clean": {"wall_s": duck_counts["wall_s"], "process_wall_s": duck["wall_s"], "peak_rss_gib": duck["peak_rss_gib"]},
        "spark_counts": counts,
        "duckdb_counts": {k: duck_counts[k] for k in ("read", "clean", "quarantined", "duplicates")},
    }
    result["spark_clean_events_per_s"] = round(counts["read"] / clean["wall_s"])
    result["etl_events_per_s"] = round(counts["read"] / (clean["wall_s"] + seqs["wall_s"]))
    result["clean_ratio_spark_over_duckdb"] = round(clean["wall_s"] / duck["wall_s"], 2)
    print(json.dumps(result, indent=2), flush=True)
    return result


def write_results(results: list[dict], machine_line: str) -> None:
    rows = [
        "| events | raw MiB | generate s | Spark clean s (events/s) | Spark clean peak GiB | Spark sequences s (peak GiB) "
        "| DuckDB clean s (peak GiB) | Spark / DuckDB | clean rows Spark / DuckDB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['events']:,} | {r['raw_mib']} | {r['generate']['wall_s']} | {r['spark_clean']['wall_s']} "
            f"({r['spark_clean_events_per_s']:,}) | {r['spark_clean']['peak_rss_gib']} | "
            f"{r['spark_sequences_last_day']['wall_s']} ({r['spark_sequences_last_day']['peak_rss_gib']}) | "
            f"{r['duckdb_clean']['process_wall_s']} ({r['duckdb_clean']['peak_rss_gib']}) | "
            f"{r['clean_ratio_spark_over_duckdb']}x | {r['spark_counts']['clean']:,} / {r['duckdb_counts']['clean']:,} |"
        )
    section = "\n".join([f"Machine: {machine_line}.", f"Run: {time.strftime('%Y-%m-%d', time.gmtime())}, "
                         "`.venv/bin/python benchmarks/etl.py`.", "", *rows])
    write_section("etl", "ETL", section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "_work")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        results.append(bench(size, args.work))
        if not args.keep:
            shutil.rmtree(args.work / f"etl-{size}", ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "etl-results.json").write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    write_results(results, machine())


if __name__ == "__main__":
    main()
