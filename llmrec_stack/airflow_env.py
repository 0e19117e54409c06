"""The Airflow environment every llmrec entry point shares: `llmrec pipeline`, `make up`, tests.

Airflow's home is ``$LLMREC_HOME/airflow`` (SQLite metadata DB, logs, generated secrets), the
DAGs folder is this repository's ``dags/``. :func:`setup` migrates the metadata DB and creates
what the DAGs need once: the ``gpu`` pool (one slot) and the ``spark_default`` connection
pointing at ``local[*]``, a connection users edit (UI, CLI) to move Spark to a cluster.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from llmrec_core.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
SPARK_LOCAL = {"conn_type": "spark", "host": "local[*]", "extra": {"deploy-mode": "client", "spark-binary": "spark-submit"}}


def airflow_home(settings: Settings) -> Path:
    return settings.home / "airflow"


def _secret(path: Path, nbytes: int) -> str:
    """A generated secret kept in the home with 0600 permissions (created once)."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(nbytes))
    os.chmod(path, 0o600)
    return path.read_text().strip()


def environment(settings: Settings) -> dict[str, str]:
    """Variables for every Airflow process (and in-process ``dag.test()``) of this home."""
    home = airflow_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "LLMREC_HOME": str(settings.home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": os.environ.get("AIRFLOW__API__PORT", "8080"),
        # Tokens signed by the scheduler are checked by the api-server: one secret, 64+ bytes.
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(home / "jwt_secret", 64),
        "AIRFLOW__API__SECRET_KEY": _secret(home / "api_secret_key", 32),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
        # spark-submit and airflow come with this environment's packages.
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }
    port = env["AIRFLOW__API__PORT"]
    env["AIRFLOW__API__BASE_URL"] = f"http://127.0.0.1:{port}"
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{port}/execution/"
    return env
