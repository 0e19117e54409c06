"""A task that times out, is told to stop, or is killed outright takes its job down with it.

``run_job`` used to leave the subprocess running: a training whose task had timed out went on,
and could still promote a model hours later."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.faults.test_crash_commits import REPO

TASK = """
import sys
from llmrec_core.orchestration.tasks import run_job
how = sys.argv[2]
if how == "timeout":
    from airflow.sdk.execution_time.timeout import timeout
    with timeout(3):
        run_job("tests.faults.sleeper", [sys.argv[1]])
else:
    run_job("tests.faults.sleeper", [sys.argv[1]])
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie awaiting its reaper is gone for every purpose here.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


def wait_until(predicate, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal is Linux only")
@pytest.mark.parametrize("how", ["timeout", "sigterm", "sigkill"])
def test_the_job_and_its_children_end_with_the_task(tmp_path, how):
    pids = tmp_path / "pids"
    task = subprocess.Popen([sys.executable, "-c", TASK, str(pids), how], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: pids.exists() and pids.read_text()), "the job never started"
        job, grandchild = map(int, pids.read_text().split())
        assert alive(job) and alive(grandchild)
        if how == "sigterm":
            task.send_signal(signal.SIGTERM)
        elif how == "sigkill":
            task.send_signal(signal.SIGKILL)
        task.wait(timeout=60)
        assert wait_until(lambda: not alive(job)), "the job outlived its task"
        if how != "sigkill":
            # Stopped as a group: the job's own children go too. (After SIGKILL the kernel ends
            # the job, whose children then follow their own parent-death rules.)
            assert wait_until(lambda: not alive(grandchild)), "the job's child outlived the task"
        if how == "timeout":
            assert "Timeout" in task.stderr.read()
    finally:
        task.kill()
        for pid in map(int, pids.read_text().split()) if pids.exists() and pids.read_text() else ():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
