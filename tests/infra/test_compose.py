"""The single-host compose file: the services it must have, healthchecks, images, loopback-only
ports, and every variable it reads documented (no Docker engine runs here, so it is parsed)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
COMPOSE = yaml.safe_load((INFRA / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


def test_services_and_images():
    assert set(SERVICES) == {"postgres", "airflow-init", *AIRFLOW, "mlflow", "spark-master", "spark-worker"}
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    for name, svc in SERVICES.items():
        if name != "postgres":
            assert svc["image"].startswith("llmrec:"), name
            assert svc["build"] == {"context": "..", "dockerfile": "infra/Dockerfile"}, name
    dockerfile = (INFRA / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.\d+-python3\.11$", dockerfile, re.M)
    assert "openjdk-17" in dockerfile and "torch==2.13.0" in dockerfile


def test_every_service_has_a_healthcheck_and_the_stack_waits_for_health():
    for name, svc in SERVICES.items():
        check = svc["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL") and len(check) > 1, name
    for name in (*AIRFLOW, "mlflow"):
        assert SERVICES[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name
    for name in AIRFLOW:
        assert SERVICES[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert SERVICES["spark-worker"]["depends_on"]["spark-master"]["condition"] == "service_healthy"


def test_airflow_components_keep_log_servers_off_and_ports_bind_to_loopback():
    assert SERVICES["airflow-scheduler"]["command"] == "scheduler --skip-serve-logs"
    assert SERVICES["airflow-triggerer"]["command"] == "triggerer --skip-serve-logs"
    assert SERVICES["airflow-dag-processor"]["command"] == "dag-processor"
    env = SERVICES["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor" and env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert '"spark://spark-master:7077"' in env["AIRFLOW_CONN_SPARK_DEFAULT"]
    published = [p for svc in SERVICES.values() for p in svc.get("ports", [])]
    assert published and all(p.startswith("127.0.0.1:") for p in published)
    assert {"postgres-data", "llmrec-home"} <= set(COMPOSE["volumes"])


def test_every_variable_the_compose_file_reads_is_documented():
    text = (INFRA / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    assert {"POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_ADMIN_PASSWORD"} <= used
    readme = (INFRA / "README.md").read_text()
    example = (INFRA / "env.example").read_text()
    for var in used:
        assert f"`{var}`" in readme, f"{var} is not documented in infra/README.md"
        assert re.search(rf"^{var}=", example, re.M), f"{var} is missing from infra/env.example"
