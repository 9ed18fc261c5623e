# Entry points: `make demo` runs a real AutoML job on the embedded default (SQLite, in-process);
# `make test` runs the test suite (needs PostgreSQL on 127.0.0.1:5432 for the fleet-store tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/automl validate jobspecs/titanic.json
	$(BIN)/automl datasets add jobspecs/data/titanic.csv --target survived
	$(BIN)/automl run jobspecs/titanic.json
	$(BIN)/automl leaderboard --model titanic
	$(BIN)/automl models show titanic
	head -4 jobspecs/data/titanic.csv > .automl/demo-rows.csv
	$(BIN)/automl predict titanic --input .automl/demo-rows.csv --proba

# The 25 slowest tests are listed at the end, to keep the suite's time in view.
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=25 $(PYTEST_ARGS)

# The quick subset while editing: everything but whole jobs, fleet workers, server processes and
# the browser (tests marked `slow`); `make test` runs them all.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check automl workers tests migrations
	$(BIN)/ruff format --check automl workers migrations
	$(BIN)/mypy automl workers

schema: $(STAMP)
	$(BIN)/automl schema -o jobspecs/jobspec.schema.json

bench: $(STAMP)
	$(BIN)/python bench/run_bench.py --setup-peers
	$(BIN)/python bench/run_bench.py $(BENCH_ARGS)

clean:
	rm -rf .automl .pytest_cache .mypy_cache .ruff_cache
