"""Secrets stay secret, the MLflow server needs a login, and what llmrec writes is its owner's only.

A warehouse password used to be written into every MLflow run's params, every bundle's
``meta.json`` and ``llmrec config``'s output; anyone who reached 127.0.0.1:5000 could move
``champion``; and files under ``$LLMREC_HOME`` took whatever the user's umask allowed."""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from jobs import score, train
from llmrec_core import cli
from llmrec_core.settings import redact_url
from llmrec_stack import stack
from tests.faults.test_crash_commits import REPO
from tests.jobs.test_etl_jobs import D1, seed_day

PLANTED = "Pl4nted-S3cret-7f3a"


def test_urls_are_redacted_wherever_settings_are_shown():
    assert redact_url(f"postgresql://llmrec:{PLANTED}@db:5432/warehouse") == "postgresql://llmrec:***@db:5432/warehouse"
    assert redact_url(f"host=db user=llmrec password={PLANTED} dbname=w") == "host=db user=llmrec password=*** dbname=w"
    assert redact_url("postgresql://llmrec@db/warehouse") == "postgresql://llmrec@db/warehouse"


def test_a_planted_password_leaks_nowhere(toy_home, tiny_settings, postgres_db_url, monkeypatch, capsys, caplog):
    home, last = toy_home
    url = postgres_db_url.replace("postgresql://llmrec@", f"postgresql://llmrec:{PLANTED}@")
    monkeypatch.setenv("LLMREC_WAREHOUSE_URL", url)
    tiny_settings.warehouse_url = url
    tiny_settings.tracking.gate_baselines = ["popularity"]
    out = train.run(tiny_settings, last, progress=False)
    assert out["champion"]
    # A scoring job in its own process, while `ps` is watched.
    job = subprocess.Popen([sys.executable, "-m", "jobs.score", "--ds", str(last), "--force"], cwd=REPO, env=os.environ.copy(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    while job.poll() is None:
        seen.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
        time.sleep(0.2)
    log = job.stdout.read()
    assert job.returncode == 0, log[-3000:]
    score.run(tiny_settings, last, force=True)
    assert cli.main(["config"]) == 0
    shown = capsys.readouterr()
    assert "postgresql://llmrec:***@127.0.0.1" in shown.out

    leaks = [f"`ps` output ({len(seen)} samples)"] if any(PLANTED in s for s in seen) else []
    leaks += [name for name, text in (("job log", log), ("stdout", shown.out), ("stderr", shown.err), ("log records", caplog.text)) if PLANTED in text]
    needles = (PLANTED.encode(), base64.b64encode(PLANTED.encode()))
    for path in home.rglob("*"):  # the MLflow store and artifacts, the bundles, the lake, run records
        if path.is_file() and any(n in path.read_bytes() for n in needles):
            leaks.append(str(path.relative_to(home)))
    assert leaks == []


def test_files_llmrec_writes_are_its_owners_only(spark, home, monkeypatch):
    os.umask(0o022)  # a permissive user umask
    seed_day(home, D1)
    assert cli.main(["etl", "--ds", D1]) == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    loose = []
    for path in home.rglob("*"):
        if "raw" in path.relative_to(home).parts:
            continue  # the input, as the platform wrote it
        if stat.S_IMODE(path.lstat().st_mode) & 0o077:
            loose.append(f"{path.relative_to(home)} {oct(stat.S_IMODE(path.lstat().st_mode))}")
    assert len(list((home / "lake").rglob("*.parquet"))) > 0 and loose == []


def _get(url: str, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, ConnectionError):
        return 0  # not listening yet


def test_the_mlflow_server_requires_a_login(settings, tmp_path):
    from tests.postgres import _free_port

    env, password, generated = stack.mlflow_auth(settings)
    assert generated and stack.mlflow_auth(settings)[1:] == (password, False)
    folder = settings.home / "mlflow-auth"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    port = _free_port()
    cmd = stack.mlflow_server(settings, port)
    server = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=open(tmp_path / "mlflow.log", "wb"), stderr=subprocess.STDOUT,
                              cwd=settings.home, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while _get(f"{base}/health") != 200:
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "mlflow.log").read_text()[-2000:]
            time.sleep(0.5)
        alias = f"{base}/api/2.0/mlflow/registered-models/search"
        assert _get(alias) == 401 and _get(f"{base}/") == 401
        assert _get(alias, ("admin", "wrong")) == 401
        assert _get(alias, ("admin", password)) == 200
        assert password not in open(f"/proc/{server.pid}/cmdline", "rb").read().decode(errors="replace")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.mark.parametrize("secret", ["POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD", "MLFLOW_ADMIN_PASSWORD"])
def test_compose_keeps_secrets_off_command_lines_and_refuses_empty_ones(secret):
    from tests.infra.test_compose import INFRA, SERVICES

    text = (INFRA / "docker-compose.yml").read_text()
    interpolations = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
    assert interpolations and all(rest.startswith(":?") for rest in interpolations), interpolations
    for name, svc in SERVICES.items():
        command = svc.get("command", [])
        command = " ".join(command) if isinstance(command, list) else str(command)
        assert "PASSWORD}" not in command.replace(f"$${{{secret}}}", ""), name
