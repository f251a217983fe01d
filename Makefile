# One task runner for people and CI. `make demo` and `make test` each set up what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test browser check lint typecheck imports unit bench lock clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip>=25.1"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e . --group dev
	touch $(STAMP)

## demo: set up and run the whole loop on synthetic data (`shipyard demo`); installs nothing
## outside .venv
demo: $(STAMP)
	$(BIN)/shipyard demo

## test: set up, then lint, type-check, check the floors and run the whole test suite (on
## every core: pytest-xdist, one test file per worker at a time, so a module's fixtures and
## its ordering stay whole)
test: $(STAMP) browser check
	$(BIN)/python -m pytest -n auto --dist loadfile --durations=15

## browser: a real browser for the report tests — Debian's chromium (Playwright drives it; its
## own browser download cannot work here). Without root or apt the browser tests skip and say so.
browser:
	test -x /usr/bin/chromium || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		>/dev/null; } || echo "chromium not installed: browser tests will be skipped"

## check: ruff, mypy (strict on src/) and the import-linter floor contracts
check: lint typecheck imports

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not e2e"

## bench: side by side with MLflow, DVC, MLServer and Evidently, each in its own venv; hashing;
## OIP binary vs JSON; deployment routing; pipelines vs ZenML and Prefect; tuning vs Optuna;
## the demo's stages
bench: $(STAMP)
	$(BIN)/python bench/tracking_vs_mlflow.py
	$(BIN)/python bench/hashing.py
	$(BIN)/python bench/data_vs_dvc.py
	$(BIN)/python bench/serving_vs_mlserver.py --batch
	$(BIN)/python bench/drift_vs_evidently.py
	$(BIN)/python bench/oip_binary.py
	$(BIN)/python bench/deploy_routes.py
	$(BIN)/python bench/pipelines_vs_zenml_prefect.py
	$(BIN)/python bench/tuning_vs_optuna.py
	$(BIN)/python bench/demo_stages.py
	$(BIN)/python bench/server_vs_mlflow.py

## lock: refresh constraints.txt from the current environment
lock:
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check > constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
