"""The loop a user does against the running stack (`make up`), through Airflow's REST API:
get a token, unpause ``llmrec_etl``, trigger it for a day, poll the run to success.

    .venv/bin/python infra/local/rest_smoke.py --ds 1998-04-22 [--dag llmrec_etl] [--url http://127.0.0.1:8080]

The password comes from ``$LLMREC_HOME/airflow/passwords.json`` (written by ``make up``). Exits 0
when the run succeeds, 1 when it fails or times out, printing each state change.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def call(method: str, url: str, body: dict | None = None, token: str | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as err:
        raise SystemExit(f"{method} {url} -> {err.code}: {err.read().decode(errors='replace')[:500]}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--ds", required=True)
    parser.add_argument("--dag", default="llmrec_etl")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    home = Path(os.environ.get("LLMREC_HOME", ".llmrec")).absolute()
    password = json.loads((home / "airflow" / "passwords.json").read_text())["admin"]
    token = call("POST", f"{args.url}/auth/token", {"username": "admin", "password": password})["access_token"]
    print("token: ok")
    # Trigger first, then unpause: unpausing also creates the run of the latest schedule
    # interval (the day that just ended), which must not go before this one.
    run = call("POST", f"{args.url}/api/v2/dags/{args.dag}/dagRuns", {"logical_date": None, "conf": {"ds": args.ds}}, token)
    run_id, state = run["dag_run_id"], None
    print(f"triggered {run_id}")
    dag = call("PATCH", f"{args.url}/api/v2/dags/{args.dag}", {"is_paused": False}, token)
    print(f"{args.dag}: is_paused={dag['is_paused']}")
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        current = call("GET", f"{args.url}/api/v2/dags/{args.dag}/dagRuns/{run_id}", token=token)["state"]
        if current != state:
            state = current
            print(f"{time.strftime('%H:%M:%S')} {run_id}: {state}", flush=True)
        if state in ("success", "failed"):
            break
        time.sleep(5)
    tis = call("GET", f"{args.url}/api/v2/dags/{args.dag}/dagRuns/{run_id}/taskInstances", token=token)
    for ti in tis.get("task_instances", []):
        print(f"  {ti['task_id']}: {ti['state']} (try {ti.get('try_number')})")
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
