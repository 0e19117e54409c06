"""The local stack behind ``make up`` / ``make down``: Airflow and an MLflow server on 127.0.0.1.

Airflow runs as its four components (api-server, scheduler and triggerer without their log
servers, dag-processor) with the LocalExecutor (parallelism 4) on ``$LLMREC_HOME/airflow``;
MLflow serves ``$LLMREC_HOME/mlflow.db`` and its artifacts. Each process starts in its own
process group with a PID file under ``$LLMREC_HOME/airflow/run/`` and a log under
``$LLMREC_HOME/airflow/logs/stack/``; ``down`` sends each group TERM, waits, then KILL.

Authentication is on in both. Airflow: user ``admin`` with a password generated once, printed
once and kept in ``$LLMREC_HOME/airflow/passwords.json`` (0600), and a 64-byte JWT secret kept
beside it. MLflow runs its ``basic-auth`` app: user ``admin`` with its own generated password in
``$LLMREC_HOME/mlflow-auth/admin_password`` (0600); without it, nobody reaching the server can
read runs or move ``champion``. Secrets reach the servers through files and environment
variables, never on a command line (where ``ps`` shows them).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from llmrec_core.errors import LlmrecError
from llmrec_core.settings import Settings, private_files
from llmrec_stack.airflow_env import airflow_home
from llmrec_stack.pipeline import setup

log = logging.getLogger(__name__)
STOP_WAIT_S = 20


def _components(settings: Settings, airflow_port: int, mlflow_port: int) -> dict[str, list[str]]:
    bin_dir = Path(sys.executable).parent
    airflow = str(bin_dir / "airflow")
    return {
        "api-server": [airflow, "api-server", "--host", "127.0.0.1", "--port", str(airflow_port)],
        "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
        "dag-processor": [airflow, "dag-processor"],
        "triggerer": [airflow, "triggerer", "--skip-serve-logs"],
        "mlflow": mlflow_server(settings, mlflow_port),
    }


def mlflow_server(settings: Settings, port: int) -> list[str]:
    """The MLflow server's command: the tracking store and artifacts of the home, behind a login."""
    home = settings.home
    return [str(Path(sys.executable).parent / "mlflow"), "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
            "--artifacts-destination", str(home / "mlartifacts")]


def mlflow_auth(settings: Settings) -> tuple[dict[str, str], str, bool]:
    """The MLflow login: the server's environment (its auth config file and Flask secret, both
    0600 under ``$LLMREC_HOME/mlflow-auth``), the admin password and whether it was generated
    just now."""
    folder = settings.home / "mlflow-auth"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    password, generated = _secret(folder / "admin_password", lambda: secrets.token_urlsafe(18))
    flask_secret, _ = _secret(folder / "flask_secret", lambda: secrets.token_hex(32))
    config = folder / "basic_auth.ini"
    body = ("[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{folder / 'basic_auth.db'}\n"
            f"admin_username = admin\nadmin_password = {password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": flask_secret}
    return env, password, generated


def _secret(path: Path, make) -> tuple[str, bool]:
    """The secret kept in ``path`` (0600, created once with ``make()``) and whether it is new."""
    if path.is_file():
        return path.read_text().strip(), False
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value, True


def _pid_dir(settings: Settings) -> Path:
    return airflow_home(settings) / "run"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(settings: Settings) -> dict[str, int]:
    """Components whose PID file names a live process."""
    out = {}
    for f in sorted(_pid_dir(settings).glob("*.pid")):
        pid = int(f.read_text().strip() or 0)
        if pid and _alive(pid):
            out[f.stem] = pid
    return out


def admin_password(settings: Settings) -> tuple[str, bool]:
    """The admin password and whether it was generated just now (0600 file, created once)."""
    kept, generated = _secret(airflow_home(settings) / "passwords.json", lambda: json.dumps({"admin": secrets.token_urlsafe(18)}))
    return json.loads(kept)["admin"], generated


def _wait_http(url: str, timeout: float, proc: subprocess.Popen, name: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LlmrecError(f"{name} exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    raise LlmrecError(f"{name} did not answer on {url} within {timeout:.0f}s; see {log_path}")


def up(settings: Settings, airflow_port: int = 8080, mlflow_port: int = 5000) -> dict[str, object]:
    already = running(settings)
    if already:
        raise LlmrecError(f"already running: {', '.join(f'{k} ({v})' for k, v in already.items())}; `make down` first")
    os.environ["AIRFLOW__API__PORT"] = str(airflow_port)
    private_files(settings.home)
    password, generated = admin_password(settings)
    mlflow_env, mlflow_password, mlflow_generated = mlflow_auth(settings)
    env = setup(settings)
    logs, pids = airflow_home(settings) / "logs" / "stack", _pid_dir(settings)
    logs.mkdir(parents=True, exist_ok=True)
    pids.mkdir(parents=True, exist_ok=True)
    procs = {}
    for name, cmd in _components(settings, airflow_port, mlflow_port).items():
        with open(logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(cmd, env={**os.environ, **env, **(mlflow_env if name == "mlflow" else {})}, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=settings.home)
        (pids / f"{name}.pid").write_text(str(proc.pid))
        procs[name] = proc
        log.info("started %s (pid %d)", name, proc.pid)
    try:
        _wait_http(f"http://127.0.0.1:{airflow_port}/api/v2/monitor/health", 180, procs["api-server"], "api-server", logs / "api-server.log")
        _wait_http(f"http://127.0.0.1:{mlflow_port}/health", 120, procs["mlflow"], "mlflow", logs / "mlflow.log")
    except LlmrecError:
        down(settings)
        raise
    return {"airflow": f"http://127.0.0.1:{airflow_port}", "mlflow": f"http://127.0.0.1:{mlflow_port}", "user": "admin",
            "password": password if generated else None, "password_file": str(airflow_home(settings) / "passwords.json"),
            "mlflow_password": mlflow_password if mlflow_generated else None,
            "mlflow_password_file": str(settings.home / "mlflow-auth" / "admin_password"),
            "pids": {k: p.pid for k, p in procs.items()}}


def down(settings: Settings) -> list[str]:
    """Stop every component: TERM to its process group, wait, then KILL. Returns what was stopped."""
    stopped = []
    for f in sorted(_pid_dir(settings).glob("*.pid")):
        pid = int(f.read_text().strip() or 0)
        if pid and _alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + STOP_WAIT_S
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.5)
                _reap(pid)
            if _alive(pid):
                log.warning("%s (pid %d) ignored TERM for %ds: KILL", f.stem, pid, STOP_WAIT_S)
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.1)
                    _reap(pid)
            stopped.append(f.stem)
        f.unlink()
    return stopped


def _reap(pid: int) -> None:
    """Collect a child that exited (when ``down`` runs in the process that started it)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
