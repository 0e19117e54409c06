"""A host that only scores or serves the registered model needs neither Airflow nor Spark.

``pip install llmrec`` (no extras) leaves both out: the nightly scoring job with the local runner,
``llmrec evaluate``'s entry point and the registered pyfunc must work without them. The job runs in
a fresh interpreter in which importing ``airflow`` or ``pyspark`` fails, as it would there."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from llmrec_core.io import tracking
from tests.faults.conftest import toy_registry  # noqa: F401 (fixture)
from tests.faults.test_forged_model import register_popularity

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("airflow", "pyspark", "selenium")
HOST = textwrap.dedent(f"""
    import importlib.abc, json, sys

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}} (not on a scoring host)", name=name)

    sys.meta_path.insert(0, NotInstalled())
    from jobs import score
    import llmrec_core.evaluate, llmrec_core.registry.pyfunc  # noqa: F401
    import mlflow

    ITEMS = json.loads(sys.argv.pop())
    code = score.main(sys.argv[1:])
    model = mlflow.pyfunc.load_model("models:/llmrec@champion")
    print(json.dumps({{"code": code, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r}),
                      "scores": model.predict(__import__("pandas").DataFrame({{"history": [[ITEMS[0]]], "item_id": [ITEMS[1]]}}))["score"].tolist()}}))
""")


def test_scoring_and_the_pyfunc_run_without_airflow_or_spark(toy_registry):  # noqa: F811 (the fixture)
    settings, last, snap = toy_registry
    version = register_popularity(settings, snap, str(last))
    tracking.promote(settings, version, "first champion", expected=None)
    items = json.dumps([str(i) for i in snap.item_ids[:2]])
    out = subprocess.run([sys.executable, "-c", HOST, "--ds", str(last), items], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] == 0 and result["loaded"] == [], result
    assert len(result["scores"]) == 1 and 0.0 <= result["scores"][0] <= 1.0, result
    assert (settings.home / "warehouse.duckdb").exists()
