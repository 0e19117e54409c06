"""benchmarks/peers.py hands RecBole the harness's exact loo split (no RecBole needed here)."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

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
