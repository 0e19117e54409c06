"""One writer per home, job and day; and a checkpoint never outlives the data it was trained on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import signal
import subprocess
import sys

import numpy as np
import pytest

from jobs import score
from llmrec_core import cli
from llmrec_core.data import protocols
from llmrec_core.data.snapshot import load_snapshot
from llmrec_core.io import locks
from tests.conftest import write_raw
from tests.faults.test_crash_commits import REPO
from tests.recommenders.test_recommenders import _llm

DAY = dt.date(2024, 1, 2)
HOLD = """
import datetime as dt, sys, time
from pathlib import Path
from llmrec_core.io import locks
with locks.hold(Path(sys.argv[1]), sys.argv[2], [dt.date(2024, 1, 2)]):
    print("holding", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(home):
    """Start a process that holds a job's lock for DAY; yields (start, process)."""
    procs = []

    def start(job: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(home), job], cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "holding"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_writer_of_the_same_day_fails_clearly(home, holder, capsys):
    write_raw(home, "events", DAY, [{"user_id": "u1", "item_id": "i1", "event_type": "click", "ts": f"{DAY}T10:00:00Z"}])
    other = holder("etl")
    assert cli.main(["etl", "--ds", str(DAY)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: another llmrec etl for {DAY} is running (pid {other.pid} on ") and "Traceback" not in err
    holder("score")
    assert score.main(["--ds", str(DAY)]) == 1
    assert f"another llmrec score for {DAY} is running" in capsys.readouterr().err
    # Another day, or another job on the day, is not held up.
    with locks.hold(home, "etl", [DAY - dt.timedelta(days=1)]), locks.hold(home, "train", [DAY]):
        pass


def test_a_killed_writer_leaves_no_stale_lock(home, holder):
    proc = holder("etl")
    with pytest.raises(locks.BusyError):
        with locks.hold(home, "etl", [DAY]):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with locks.hold(home, "etl", [DAY]):
        assert (home / "_locks" / "etl" / f"ds={DAY}.lock").stat().st_mode & 0o077 == 0


@pytest.fixture
def trained(toy_home, tiny_settings, tmp_path):
    _, last = toy_home
    snap = load_snapshot(tiny_settings, last)
    train = snap.events.mask(snap.events.ts < snap.end_ts - 3 * protocols.DAY)
    tiny_settings.train.epochs = 2
    ckpt = tmp_path / "ckpt"
    _llm(tiny_settings).fit(snap, train, checkpoint=ckpt)
    return tiny_settings, snap, train, ckpt


def test_a_rerun_on_the_same_data_resumes_its_finished_checkpoint(trained):
    settings, snap, train, ckpt = trained
    assert _llm(settings).fit(snap, train, checkpoint=ckpt).result_.resumed_from == 2


def test_a_data_fix_starts_training_over(trained):
    """Fixes that leave the row count, the timestamps and the items as they were (a relabelled
    event, events moved to the right user, a corrected title) used to resume the stale model."""
    settings, snap, train, ckpt = trained
    relabelled = dataclasses.replace(train, label=np.where(np.arange(len(train)) == 0, 1 - train.label.clip(0, 1), train.label).astype(train.label.dtype))
    moved = dataclasses.replace(train, user=np.roll(train.user, 1))
    retitled = dataclasses.replace(snap, item_texts=[snap.item_texts[0] + " (restored cut)", *snap.item_texts[1:]])
    for s, t in ((snap, relabelled), (snap, moved), (retitled, train)):
        assert _llm(settings).fit(s, t, checkpoint=ckpt).result_.resumed_from == 0
