"""benchmarks/peers.py hands RecBole the harness's exact loo split (no RecBole needed here)."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import peers  # noqa: E402

from llmrec_core.data import protocols  # noqa: E402
from llmrec_core.data.snapshot import load_snapshot  # noqa: E402


def test_recbole_leave_one_out_over_the_export_is_the_harness_loo(toy_home, settings, tmp_path):
    home, last = toy_home
    snap = load_snapshot(settings, last)
    valid, test = protocols.loo(snap.events, snap.n_users)
    peers.export_split(snap, test, tmp_path)

    # RecBole's LS split (order TO): per user, events sorted by the timestamp column; the last is
    # the test target, the one before the validation target, the rest train.
    rows = (tmp_path / "llmrec_loo" / "llmrec_loo.inter").read_text().splitlines()
    assert rows[0] == "user_id:token\titem_id:token\ttimestamp:float"
    by_user = defaultdict(list)
    for line in rows[1:]:
        u, i, t = line.split("\t")
        by_user[u].append((float(t), i))
    assert sum(len(v) for v in by_user.values()) == len(snap.events)  # nothing dropped
    seqs = {u: [i for _, i in sorted(v)] for u, v in by_user.items()}
    for row, u in enumerate(test.users):
        seq = seqs[snap.user_ids[u]]
        assert seq[-1] == snap.item_ids[test.truth[row][0]]
        assert seq[-2] == snap.item_ids[valid.truth[row][0]]
    # Same-second events keep the harness's order: the sequences are the harness's, event for event.
    indptr = snap.events.indptr(snap.n_users)
    for u in range(snap.n_users):
        assert seqs.get(snap.user_ids[u], []) == list(snap.item_ids[snap.events.item[indptr[u]:indptr[u + 1]]])

    ev = np.load(tmp_path / "eval.npz")
    assert len(ev["target"]) == len(test.users) and len(ev["indptr"]) == len(test.users) + 1
    hist_ptr = test.history.indptr(snap.n_users)
    for row, u in enumerate(test.users):
        history = list(ev["history"][ev["indptr"][row]:ev["indptr"][row + 1]])
        # The masked history is everything but the held-out item, the validation item included.
        assert history == list(snap.item_ids[test.history.item[hist_ptr[u]:hist_ptr[u + 1]]]) == seqs[snap.user_ids[u]][:-1]
        assert ev["target"][row] == snap.item_ids[test.truth[row][0]]


def test_a_peer_run_is_kept_by_what_it_depends_on_and_reused(toy_home, settings, tmp_path):
    home, last = toy_home
    snap = load_snapshot(settings, last)
    _, test = protocols.loo(snap.events, snap.n_users)
    split = peers.export_split(snap, test, tmp_path)
    assert split == peers.export_split(snap, test, tmp_path / "again")  # the same split, the same digest
    _, shorter = protocols.loo(snap.events.mask(np.arange(len(snap.events)) > 0), snap.n_users)
    assert peers.export_split(snap, shorter, tmp_path / "other") != split  # one event fewer is another split

    key = peers.run_key(split, "SASRec", 42, 20, 3)
    others = [peers.run_key(split, "GRU4Rec", 42, 20, 3), peers.run_key(split, "SASRec", 43, 20, 3),
              peers.run_key(split, "SASRec", 42, 40, 3), peers.run_key(split, "SASRec", 42, 20, 10),
              peers.run_key(split[::-1], "SASRec", 42, 20, 3)]
    assert len({key, *others}) == 6

    class Trained(Exception):
        pass

    def recbole():  # RecBole's interpreter: asked for only when a run has to train
        raise Trained

    kept = {"ranks": [1, 5, 30], "fit_s": 1810.0, "best_epoch": 9, "epochs_run": 12, "date": "2026-12-06"}
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / f"SASRec-42-{key}.json").write_text(json.dumps(kept))
    assert peers.peer_run(recbole, tmp_path, split, "SASRec", 42, 20, 3, refit=False) == {**kept, "reused": True}
    for seed, refit in ((43, False), (42, True)):  # another seed is not kept; --refit trains anyway
        with pytest.raises(Trained):
            peers.peer_run(recbole, tmp_path, split, "SASRec", seed, 20, 3, refit=refit)
