"""The path a person takes through llmrec's UIs, in a real browser against a real `llmrec up`.

`make ui-test` runs it (`pytest -m ui tests/ui -x`); `make test` leaves it out. The stack is
started on free ports with a fresh home under ``.ui-test/`` (ignored), MovieLens-100K ingested.
Each step saves a screenshot under ``.ui-test/screenshots/`` and fails when its page does not show
what it should; the steps run in order and share one browser:

1. log in to Airflow with the generated password;
2. the four DAGs are listed;
3. the trigger form of ``llmrec_train`` shows its params, and an invalid language model is refused
   with the schema's message (no run is created);
4. ``llmrec_etl`` is triggered from its form for 1998-04-22 and the run page shows success;
5. (a small training run writes to the MLflow store, as the train DAG would)
   MLflow: log in, the ``llmrec`` experiment lists the newest training run;
6. that run's page, then the compare view of its child runs;
7. the registered model, with its ``champion`` alias, and the champion version's page.

REST calls are used only to wait without polling the browser and to learn ids the pages show.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.ui import browser

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".ui-test"
SHOTS = WORK / "screenshots"
DAY = "1998-04-22"
DAG_IDS = ("llmrec_etl", "llmrec_train", "llmrec_score", "llmrec_refresh")
ETL_TIMEOUT_S = 420
# Training as the DAG would run it, sized for a UI check: a small random-weight language model,
# a few epochs, ALS over one grid point. The pages need runs, child runs and a champion, not quality.
SMALL_TRAINING = {
    "model": {"encoder": "random:32x2", "dim": 16, "max_len": 8, "max_text_tokens": 16},
    "train": {"epochs": 2, "patience": 1, "batch_size": 64, "negatives": 16, "validation_days": 14},
    "evaluation": {"als_rank_grid": [4], "als_reg_grid": [0.05], "als_alpha_grid": [10.0], "als_iterations": 2},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _llmrec(env: dict, *args: str, timeout: float = 900) -> str:
    out = subprocess.run([str(Path(sys.executable).with_name("llmrec")), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"llmrec {' '.join(args)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


class Stack:
    """`llmrec up` on free ports, with the two generated admin passwords."""

    def __init__(self, home: Path):
        self.home = home
        self.airflow = f"http://127.0.0.1:{_free_port()}"
        self.mlflow = f"http://127.0.0.1:{_free_port()}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMREC_", "MLFLOW_", "AIRFLOW"))}
        # A lake of historical data: ETL runs only when triggered (no day-of-today run waiting).
        self.env.update(LLMREC_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1", LLMREC_ORCHESTRATION__ETL_SCHEDULE="none")

    def up(self) -> None:
        _llmrec(self.env, "ingest", "movielens-100k")
        (self.home / "llmrec.yaml").write_text(json.dumps(SMALL_TRAINING))  # JSON is YAML
        _llmrec(self.env, "up", "--airflow-port", self.airflow.rsplit(":", 1)[1], "--mlflow-port", self.mlflow.rsplit(":", 1)[1], timeout=400)
        self.airflow_password = json.loads((self.home / "airflow" / "passwords.json").read_text())["admin"]
        self.mlflow_password = (self.home / "mlflow-auth" / "admin_password").read_text().strip()

    def down(self) -> None:
        subprocess.run([str(Path(sys.executable).with_name("llmrec")), "down"], env=self.env, capture_output=True, timeout=120)

    def airflow_api(self, path: str) -> dict:
        if not getattr(self, "_token", None):
            req = urllib.request.Request(f"{self.airflow}/auth/token", method="POST", headers={"Content-Type": "application/json"},
                                         data=json.dumps({"username": "admin", "password": self.airflow_password}).encode())
            with urllib.request.urlopen(req, timeout=30) as r:
                self._token = json.load(r)["access_token"]
        req = urllib.request.Request(f"{self.airflow}/api/v2/{path}", headers={"Authorization": f"Bearer {self._token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def mlflow_api(self, path: str, body: dict | None = None) -> dict:
        auth = base64.b64encode(f"admin:{self.mlflow_password}".encode()).decode()
        req = urllib.request.Request(f"{self.mlflow}/api/2.0/mlflow/{path}", data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)


@pytest.fixture(scope="module")
def stack():
    if why := browser.missing():
        pytest.fail(why)
    shutil.rmtree(WORK, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    s = Stack(WORK / "home")
    try:
        s.up()
        yield s
    finally:
        s.down()


@pytest.fixture(scope="module")
def page(stack):
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser.chromium(WORK / "chromium-profile")
    driver.wait = WebDriverWait(driver, 60)
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver, name: str) -> None:
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def _text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _showing(driver, *texts: str, timeout: float = 60, reload_every: float | None = None) -> str:
    """Wait until the page shows every text (reloading now and then when asked); its text."""
    started = [time.monotonic()]

    def probe():
        if reload_every and time.monotonic() - started[0] > reload_every:
            driver.refresh()
            started[0] = time.monotonic()
        body = _text(driver)
        return body if all(t in body for t in texts) else None

    return browser.wait_for(f"{', '.join(map(repr, texts))} on {driver.current_url}", probe, timeout)


def _trigger_dialog(driver, dag_id: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    driver.get(f"{driver.base}/dags/{dag_id}")
    driver.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Trigger Dag']"))).click()
    return browser.wait_for(f"the trigger form of {dag_id}", lambda: next(
        (d for d in driver.find_elements(By.CSS_SELECTOR, "[role=dialog]") if "Run Parameters" in d.text), None), 60)


def _press(driver, dialog, label: str) -> None:
    from selenium.webdriver.common.by import By

    button = next(b for b in dialog.find_elements(By.TAG_NAME, "button") if b.text.strip() == label)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()


def _replace(field, value: str) -> None:
    from selenium.webdriver.common.keys import Keys

    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(value)


def test_1_log_in_to_airflow_with_the_generated_password(stack, page):
    from selenium.webdriver.common.by import By

    page.base = stack.airflow
    page.get(stack.airflow)
    page.wait.until(lambda d: d.find_elements(By.NAME, "username"))
    _shot(page, "01-airflow-login")
    page.find_element(By.NAME, "username").send_keys("admin")
    page.find_element(By.NAME, "password").send_keys(stack.airflow_password)
    page.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    browser.wait_for("the page after signing in", lambda: "/auth/login" not in page.current_url, 60)
    _showing(page, "Dags", "Admin")
    _shot(page, "02-airflow-home")


def test_2_the_dags_are_listed(stack, page):
    page.get(f"{stack.airflow}/dags")
    # The dag-processor parses the DAG files once the stack is up: reload until all are there.
    body = _showing(page, *DAG_IDS, timeout=240, reload_every=10)
    assert f"{len(DAG_IDS)} Dags" in body, body[:500]
    _shot(page, "03-dag-list")


def test_3_the_training_form_shows_its_params_and_refuses_a_bad_one(stack, page):
    from selenium.webdriver.common.by import By

    dialog = _trigger_dialog(page, "llmrec_train")
    body = dialog.text
    for title in ("Day (UTC)", "Language model", "Fine-tuning mode", "Maximum epochs"):
        assert title in body, f"{title!r} missing from the trigger form:\n{body}"
    assert page.find_element(By.ID, "element_encoder").get_attribute("value") == "packaged"
    _shot(page, "04-train-trigger-form")
    # Keep llmrec_train paused: this form must not start a run.
    unpause = dialog.find_element(By.CSS_SELECTOR, "input[type=checkbox]")
    if unpause.is_selected():
        page.execute_script("arguments[0].click()", unpause)
    _replace(page.find_element(By.ID, "element_encoder"), "bogus-model")
    _press(page, dialog, "Trigger")
    _showing(page, "Failed validating 'pattern'", "bogus-model")
    _shot(page, "05-train-form-refuses-bad-encoder")
    assert stack.airflow_api("dags/llmrec_train/dagRuns")["total_entries"] == 0


def test_4_trigger_etl_for_a_movielens_day_from_the_form(stack, page):
    from selenium.webdriver.common.by import By

    dialog = _trigger_dialog(page, "llmrec_etl")
    assert "Day (UTC)" in dialog.text
    _replace(page.find_element(By.ID, "element_ds"), DAY)
    _shot(page, "06-etl-trigger-form")
    _press(page, dialog, "Trigger")
    browser.wait_for("the new run's page", lambda: "/runs/" in page.current_url, 60)
    run_id = urllib.parse.unquote(page.current_url.rstrip("/").rsplit("/runs/", 1)[1])
    runs = stack.airflow_api("dags/llmrec_etl/dagRuns")["dag_runs"]
    assert [r["conf"].get("ds") for r in runs if r["dag_run_id"] == run_id] == [DAY], runs
    state = browser.wait_for("llmrec_etl to finish", lambda: (s := stack.airflow_api(f"dags/llmrec_etl/dagRuns/{run_id}")["state"])
                             in ("success", "failed") and s, ETL_TIMEOUT_S, every=5)
    tasks = {t["task_id"]: t["state"] for t in stack.airflow_api(f"dags/llmrec_etl/dagRuns/{run_id}/taskInstances")["task_instances"]}
    assert state == "success", tasks
    page.refresh()
    body = _showing(page, "Success", "build_sequences", "data_checks", reload_every=10)
    assert "Failed" not in body.split("Task Instances")[0]
    _shot(page, "07-etl-run-success")


def test_5_mlflow_lists_the_newest_training_run(stack, page):
    from selenium.webdriver.common.by import By

    # What llmrec_train does, from the command line: the MLflow store is the one the server shows.
    _llmrec(stack.env, "train", "--ds", DAY, "--no-progress", timeout=900)
    page.base = stack.mlflow
    host = stack.mlflow.split("//", 1)[1]
    page.get(f"http://admin:{stack.mlflow_password}@{host}/")  # the browser's basic-auth login
    _showing(page, "Experiments")
    exp = stack.mlflow_api("experiments/get-by-name?experiment_name=llmrec")["experiment"]
    # The MLflow UI opens on GenAI traces unless told this is model training.
    page.get(f"{stack.mlflow}/#/experiments/{exp['experiment_id']}/runs?workflowType=machine_learning")
    parents = stack.mlflow_api("runs/search", {"experiment_ids": [exp["experiment_id"]], "filter": "tags.kind = 'training'",
                                               "order_by": ["attributes.start_time DESC"], "max_results": 1})["runs"]
    newest = parents[0]["info"]
    _showing(page, "llmrec", newest["run_name"])
    _shot(page, "08-mlflow-experiment")
    link = browser.wait_for("a link to the training run", lambda: next(
        (a for a in page.find_elements(By.TAG_NAME, "a") if a.text.strip() == newest["run_name"]), None), 60)
    link.click()
    browser.wait_for("the run page", lambda: newest["run_id"] in page.current_url, 60)
    _showing(page, newest["run_name"], "Parameters", "Metrics")
    _shot(page, "09-mlflow-training-run")
    stack.newest = newest


def test_6_compare_the_child_runs(stack, page):
    exp_id, parent = stack.newest["experiment_id"], stack.newest["run_id"]
    children = stack.mlflow_api("runs/search", {"experiment_ids": [exp_id], "filter": f"tags.mlflow.parentRunId = '{parent}'"})["runs"]
    assert len(children) >= 3, [c["info"]["run_name"] for c in children]
    ids = [c["info"]["run_id"] for c in children]
    page.get(f"{stack.mlflow}/#/compare-runs?runs={urllib.parse.quote(json.dumps(ids))}&experiments={urllib.parse.quote(json.dumps([exp_id]))}")
    body = _showing(page, "Comparing", *[c["info"]["run_name"] for c in children][:4])
    assert "val_" in body, body[:1000]
    _shot(page, "10-mlflow-compare-children")


def test_7_the_registered_model_and_its_champion(stack, page):
    champion = stack.mlflow_api("registered-models/alias?name=llmrec&alias=champion")["model_version"]
    page.get(f"{stack.mlflow}/#/models/llmrec")
    _showing(page, "llmrec", f"Version {champion['version']}", "champion")
    _shot(page, "11-mlflow-registered-model")
    page.get(f"{stack.mlflow}/#/models/llmrec/versions/{champion['version']}")
    _showing(page, f"Version {champion['version']}", "champion")
    _shot(page, "12-mlflow-champion-version")
