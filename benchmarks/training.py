"""Training time of the default configuration on MovieLens-100K, on this machine.

    .venv/bin/python benchmarks/training.py

Runs ``python -m jobs.train --ds 1998-04-22`` (the whole job: validation split, baselines,
ablations, the model with early stopping, re-ranker, refit, registration) on the lake of
``make run`` in ``$LLMREC_HOME``, with a throwaway MLflow store so the user's registry is not
touched and no checkpoint is resumed. Reports the job's wall time and peak memory, and the fit
time of each model the job logs. Results: ``<work>/training.json`` and ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, measure, write_section  # noqa: E402

DS = "1998-04-22"


def main() -> None:
    home = Path(os.environ.get("LLMREC_HOME", ROOT / ".llmrec")).absolute()
    if not (home / "lake" / "items" / f"ds={DS}").is_dir():
        raise SystemExit(f"no MovieLens-100K lake in {home}: run `make run` first")
    work = ROOT / "benchmarks" / "_work"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # A fresh models dir (no checkpoint to resume) and MLflow store; the lake is shared.
        bench_home = Path(tmp) / "home"
        bench_home.mkdir()
        (bench_home / "lake").symlink_to(home / "lake")
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LLMREC_CONFIG")}
        env.update({"LLMREC_HOME": str(bench_home), "PYTHONUNBUFFERED": "1",
                    "LLMREC_TRACKING__TRACKING_URI": f"sqlite:///{bench_home}/mlflow.db"})
        result = measure([sys.executable, "-m", "jobs.train", "--ds", DS, "--no-progress"], env)
        shutil.rmtree(bench_home, ignore_errors=True)
    fits = dict(re.findall(r"(\w+) (\d+)", re.search(r"fit seconds: (.*)", result["stdout"]).group(1)))
    out = {"machine": machine(), "wall_s": result["wall_s"], "peak_rss_gib": result["peak_rss_gib"], "fit_seconds": fits,
           "summary": result["stdout"]}
    (work / "training.json").write_text(json.dumps(out, indent=2))
    print(result["stdout"])
    rows = ["| step | seconds |", "|---|---|"] + [f"| fit {k} | {v} |" for k, v in fits.items()]
    rows.append(f"| **whole job** (load, all fits, evaluation, refit, MLflow, registration) | **{result['wall_s']:.0f}** |")
    write_section("training", "Training time (MovieLens-100K, default configuration)", "\n".join([
        f"Machine: {out['machine']}. Run: {time.strftime('%Y-%m-%d', time.gmtime())}, `.venv/bin/python benchmarks/training.py`; "
        f"peak memory of the job's process tree {out['peak_rss_gib']} GiB.", "", *rows, "",
        "```", result["stdout"].strip(), "```"]))


if __name__ == "__main__":
    main()
