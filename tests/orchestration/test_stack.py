"""The local stack's secrets and its stop procedure, on real processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

from llmrec_stack import stack
from llmrec_stack.airflow_env import environment


def test_secrets_are_generated_once_with_0600(settings):
    env = environment(settings)
    home = settings.home / "airflow"
    jwt = home / "jwt_secret"
    assert stat.S_IMODE(jwt.stat().st_mode) == 0o600 and len(jwt.read_text()) >= 64
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == jwt.read_text() == environment(settings)["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1" and env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8080/execution/"
    password, generated = stack.admin_password(settings)
    assert generated and len(password) >= 20
    assert stat.S_IMODE((home / "passwords.json").stat().st_mode) == 0o600
    assert stack.admin_password(settings) == (password, False)  # printed once, kept


def _start(settings, name: str, code: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    pids = settings.home / "airflow" / "run"
    pids.mkdir(parents=True, exist_ok=True)
    (pids / f"{name}.pid").write_text(str(proc.pid))
    return proc


def test_down_terminates_each_process_group_and_kills_what_ignores_term(settings, monkeypatch, caplog):
    monkeypatch.setattr(stack, "STOP_WAIT_S", 2)
    # A component with a child in its group: TERM must reach both.
    polite = _start(settings, "scheduler", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)")
    stubborn = _start(settings, "triggerer", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)")
    time.sleep(1.0)
    children = subprocess.run(["pgrep", "-g", str(polite.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 2
    assert set(stack.running(settings)) == {"scheduler", "triggerer"}
    started = time.monotonic()
    assert sorted(stack.down(settings)) == ["scheduler", "triggerer"]
    # (down reaps its own children, so their exit status is not left for Popen to read)
    assert polite.poll() is not None and stubborn.poll() is not None
    assert time.monotonic() - started >= 2  # the stubborn one was given its grace period
    assert [r.getMessage() for r in caplog.records if "KILL" in r.getMessage()] == [
        f"triggerer (pid {stubborn.pid}) ignored TERM for 2s: KILL"]
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]
    assert stack.running(settings) == {} and not list((settings.home / "airflow" / "run").glob("*.pid"))
