"""The registered model behind a real ``mlflow models serve``: it recommends a user's next items
(K rows, nothing already seen, best first, each with a reason, new items from their text) and
still scores (history, candidate) pairs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from llmrec_core.io import tracking
from llmrec_core.recommenders import zoo
from tests.registry.versions import register, toy_world

K = 5
NEW = {"item_id": "brand-new", "text": "Galaxy story 99. A space tale. Genres: Space.", "title": "Galaxy story 99"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny random-weight language model, registered, and a scoring server on it:
    (base URL, snapshot)."""
    mp, settings, snap = toy_world(tmp_path_factory, "served")
    settings.train.epochs = 1
    rec = zoo.sequence_models(settings, progress=False)[0].fit(snap, snap.events)
    version = register(settings, snap, rec)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    # The server runs ``uvicorn`` from PATH: this interpreter's.
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri, "PATH": f"{sys.prefix}/bin:{os.environ.get('PATH', '')}"}
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [f"{sys.prefix}/bin/mlflow", "models", "serve", "-m", tracking.model_uri("llmrec", version=version), "--host", "127.0.0.1",
             "--port", str(port), "--env-manager", "local", "-w", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_ping(url, server, log)
        yield url, snap
    finally:
        stop(server)
        mp.undo()


def stop(server: subprocess.Popen) -> None:
    """TERM the server's own process group (the CLI and its uvicorn worker), then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(10)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for_ping(url: str, server: subprocess.Popen, log, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow models serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"mlflow models serve did not answer /ping in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def invoke(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/invocations", json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def a_user(snap, u: int = 1) -> dict:
    """User ``u``'s behaviours as a request row."""
    rows = slice(*np.flatnonzero(np.diff(np.r_[-1, snap.events.user, snap.n_users]))[[u, u + 1]])
    ev = snap.events
    return {"history": [str(i) for i in snap.item_ids[ev.item[rows]]], "event_types": [str(t) for t in ev.event_type[rows]],
            "values": [float(v) for v in ev.value[rows]]}


def by_request(predictions: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for row in predictions:
        out.setdefault(row["request"], []).append(row)
    return out


def test_it_recommends_top_k_unseen_items_with_reasons(served):
    url, snap = served
    user = a_user(snap)
    # In records, a key one row has is given in every row (null or []): MLflow refuses a missing array cell.
    nobody = {"history": [], "event_types": None, "values": [], "new_items": None}
    status, body = invoke(url, {"dataframe_records": [{**user, "new_items": [NEW]}, nobody], "params": {"k": K}})
    assert status == 200, body
    rows = by_request(body["predictions"])
    assert sorted(rows) == [0, 1]
    for request, history in ((0, user["history"]), (1, [])):
        recs = rows[request]
        assert [r["rank"] for r in recs] == list(range(1, K + 1))
        assert not {r["item_id"] for r in recs} & set(history)
        assert len({r["item_id"] for r in recs}) == K
        scores = [r["score"] for r in recs]
        assert all(np.isfinite(scores)) and scores == sorted(scores, reverse=True)
        assert all(r["reason"] and r["title"] for r in recs)
    assert {r["source"] for r in rows[0]} <= {"model", "cold_text"} and rows[0][0]["reason"].startswith("Because")
    # Nothing to score from: the popularity fallback of the version's day.
    assert {r["source"] for r in rows[1]} == {"popularity_fallback"} and rows[1][0]["reason"] == "Popular this week"


def test_a_new_item_known_only_by_text_is_recommended_and_scored(served):
    url, snap = served
    user = a_user(snap)
    status, body = invoke(url, {"dataframe_split": {"columns": [*user, "new_items"], "data": [[*user.values(), [NEW]]]},
                                "params": {"k": 1000}})
    assert status == 200, body
    recs = body["predictions"]
    # Every unseen item is ranked (the toy catalogue is all available), the new one among them.
    assert len(recs) == snap.n_items - len(set(user["history"])) + 1
    new = [r for r in recs if r["item_id"] == NEW["item_id"]]
    assert len(new) == 1 and new[0]["source"] == "cold_text" and new[0]["title"] == NEW["title"] and np.isfinite(new[0]["score"])

    # Scoring the same pair answers p(click) of the same logit.
    status, body = invoke(url, {"dataframe_records": [{**user, "item_id": NEW["item_id"], "item_text": NEW["text"]},
                                                      {**user, "item_id": recs[0]["item_id"]}]})
    assert status == 200, body
    pair = [r["score"] for r in body["predictions"]]
    assert pair == pytest.approx([1 / (1 + np.exp(-new[0]["score"])), 1 / (1 + np.exp(-recs[0]["score"]))], abs=1e-5)


def test_a_bad_request_is_refused_with_the_reason(served):
    url, snap = served
    status, body = invoke(url, {"dataframe_records": [{"history": []}], "params": {"k": 0}})
    assert status == 400 and "k=0" in body["message"]
    status, body = invoke(url, {"dataframe_records": [{"history": [], "item_id": str(snap.item_ids[0])}, {"history": []}]})
    assert status == 400 and "every request row names an item_id" in body["message"]
