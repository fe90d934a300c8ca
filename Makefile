# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
LOWEST_VENV ?= .venv-lowest
BIN := $(VENV)/bin
export FLASK_APP := app.py
# pytest-xdist: one worker per core, each test file kept on one worker (its module fixtures
# start live servers and browsers once). PYTEST_PARALLEL= runs the suite in one process.
PYTEST_PARALLEL ?= -n auto --dist loadfile

.PHONY: run test test-lowest install install-dev initdb clean screenshots bench

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

# The interop tests' client libraries (tests/interop/package.json, pinned by its lock file), and
# the upstream sign-in tests' OpenID Provider (tests/upstream/package.json: oidc-provider).
INTEROP_NPM = (test ! -f tests/interop/package-lock.json || npm ci --prefix tests/interop --no-audit --no-fund --silent) \
	&& (test ! -f tests/upstream/package-lock.json || npm ci --prefix tests/upstream --no-audit --no-fund --silent)

## Install the test dependencies (the interop tests' npm packages too), check the layers contract,
## run the whole suite (PostgreSQL too when TEST_DATABASE_URL is set)
test: install-dev
	$(INTEROP_NPM)
	$(BIN)/lint-imports pyproject.toml
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

## Run the suite with the lowest version of each dependency the requirements allow (a fresh
## $(LOWEST_VENV); pip's output goes to $(LOWEST_VENV)/pip.log and is shown only when it fails)
test-lowest:
	rm -rf $(LOWEST_VENV)
	$(PYTHON) -m venv $(LOWEST_VENV)
	$(PYTHON) .ci/lowest-constraints.py > $(LOWEST_VENV)/constraints.txt
	$(LOWEST_VENV)/bin/pip install --quiet -r requirements-dev.txt -c $(LOWEST_VENV)/constraints.txt \
		> $(LOWEST_VENV)/pip.log 2>&1 || { cat $(LOWEST_VENV)/pip.log; exit 1; }
	$(INTEROP_NPM)
	$(LOWEST_VENV)/bin/python -m pytest -x -q $(PYTEST_PARALLEL) $(PYTEST_ARGS)

## Re-take the README's screenshots (docs/screenshots/) in headless Chromium
screenshots: install-dev
	UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_browser.py -k accessible

clean:
	rm -rf $(VENV) $(LOWEST_VENV) .pytest_cache

## Benchmark the endpoints against a bare Flask app and node oidc-provider (needs wrk, node); writes bench/results.md
## BENCH_ARGS=--quick for a short run; --servers sync,gthread,granian; --databases sqlite,postgresql
bench: install-dev
	npm ci --no-audit --no-fund --prefix bench/peer
	$(BIN)/python bench/run.py $(BENCH_ARGS)
