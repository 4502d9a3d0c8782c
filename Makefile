# OncoPersistNet — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.11 (what the pins are tested with) when present, else python3.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Stages run `python`, `dvc` and `oncopersistnet` from the project's venv.
export PATH := $(BIN):$(PATH)
# No command may need the network at run time.
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false

# Empty MODEL = models:/<register.model_name>@champion
MODEL ?=
UI_PORT ?= 5000
SERVE_PORT ?= 8000

.PHONY: help install run repro results example-gbm predict serve ui lint test test-fast bench clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  (predict takes INPUT=cells.h5ad OUTPUT=predictions.csv [MODEL=models:/NAME@ALIAS or a .onnx path])"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with pinned dependencies

run: install ## install, rebuild the pipeline with `dvc repro`, and classify example cells
	@bash scripts/ensure_scm.sh
	dvc repro
	@$(MAKE) --no-print-directory results
	@bash scripts/run_example.sh

serve: install ## serve the champion over HTTP on http://127.0.0.1:$(SERVE_PORT) (docs at /docs)
	$(BIN)/oncopersistnet serve --port $(SERVE_PORT)

results: install ## rewrite the README's generated sections from metrics/, examples/gbm_comparison.json and benchmarks/results.json (done by make run)
	@$(BIN)/python -m oncopersistnet.reporting.readme README.md metrics

example-gbm: install ## rerun the README's glioblastoma worked example in a temporary copy -> examples/gbm_comparison.json, then make results (minutes; not part of make run)
	$(BIN)/python scripts/example_gbm.py
	@$(MAKE) --no-print-directory results

repro: install ## rerun only the DVC stages whose inputs changed
	@bash scripts/ensure_scm.sh
	dvc repro

predict: install ## classify cells: make predict INPUT=cells.h5ad OUTPUT=predictions.csv [MODEL=...]
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make predict INPUT=cells.h5ad OUTPUT=predictions.csv [MODEL=models:/NAME@ALIAS|path.onnx]" >&2; exit 2; }
	oncopersistnet predict --input "$(INPUT)" --output "$(OUTPUT)" $(if $(MODEL),--model "$(MODEL)")

ui: install ## open the MLflow UI on this project's tracking store (http://127.0.0.1:5000; UI_PORT=... to change)
	@mkdir -p mlruns
	@echo "Runs: http://127.0.0.1:$(UI_PORT)/#/experiments  (experiment 'oncopersistnet'; registered models under 'Models')"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlruns/mlflow.db" \
		--default-artifact-root "$(CURDIR)/mlruns/artifacts" --host 127.0.0.1 --port $(UI_PORT) --workers 1

lint: install ## ruff: lint (pyflakes, pycodestyle, import order, keyword-only options) and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install ## install and run the whole test suite (slow end-to-end tests included)
	$(BIN)/python -m pytest

test-fast: install ## run the tests except the slow end-to-end ones
	$(BIN)/python -m pytest -m "not slow"

bench: install ## after make run: onnxruntime vs PyTorch, 1M-cell predict, HTTP load, dvc no-op, ingest memory, 5-seed x 4-fold comparison -> benchmarks/results.md and .json
	@rm -rf benchmarks/results  # results.md describes one run only
	$(BIN)/python benchmarks/bench_dvc.py
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_predict.py
	$(BIN)/python benchmarks/bench_serve.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_compare.py
	$(BIN)/python benchmarks/report.py
	@$(MAKE) --no-print-directory results

clean: ## remove pipeline outputs, the MLflow store and caches (keeps .venv)
	rm -rf data/raw data/validated data/processed data/example metrics plots reports predictions dvc_plots mlruns .dvc/cache .dvc/tmp
	find models -mindepth 1 ! -name README.md -delete
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
