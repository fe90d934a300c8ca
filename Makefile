# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := app.py

.PHONY: run test install install-dev initdb clean screenshots bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt

initdb: install
	$(BIN)/flask initdb

## Install, create or upgrade the SQLite database, and serve on http://127.0.0.1:5000
run: initdb
	$(BIN)/flask run

## Install the test dependencies, check the layers contract, run the whole suite (PostgreSQL too when TEST_DATABASE_URL is set)
test: install-dev
	$(BIN)/lint-imports pyproject.toml
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Re-take the README's screenshots (docs/screenshots/) in headless Chromium
screenshots: install-dev
	UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_browser.py -k accessible

clean:
	rm -rf $(VENV) .pytest_cache

## Benchmark the endpoints against a bare Flask app (needs wrk); writes bench/results.md
bench: install-dev
	$(BIN)/python bench/run.py $(BENCH_ARGS)
