# One runner for people and CI: `make test` is what the README and .ci/run use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
SAMPLE ?= sample_traces
DB ?= correlate.duckdb

.PHONY: setup node-deps quickstart test lint check format bench clean samples-otel

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,demo]'
	touch $@

setup: $(VENV)/.installed

## The Node examples' packages, from their lock files (their tests skip without node and npm).
NODE_SHOP := examples/node-shop
NODE_MYSQL := examples/node-mysql
$(NODE_SHOP)/node_modules/.package-lock.json: $(NODE_SHOP)/package-lock.json
	npm ci --prefix $(NODE_SHOP) --no-audit --no-fund

$(NODE_MYSQL)/node_modules/.package-lock.json: $(NODE_MYSQL)/package-lock.json
	npm ci --prefix $(NODE_MYSQL) --no-audit --no-fund

node-deps:
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(NODE_SHOP)/node_modules/.package-lock.json \
			$(NODE_MYSQL)/node_modules/.package-lock.json; \
	else echo "npm not found: the Node examples' tests will skip"; fi

## The main job on the committed sample run.
quickstart: setup
	rm -f $(DB)
	$(BIN)/correlate analyze $(SAMPLE)/checkout-blackfriday --db $(DB)

## Two passes at once: the tests that use a server or time real work (marked `serial` in
## tests/conftest.py) one at a time, and beside them, at the lowest CPU priority, the others
## on one process per core (at most 4). The serial tests mostly wait (on a load, a service, a
## database), and the kernel gives the low-priority pass only the cycles they leave: their
## figures stay their own, and the whole takes little more than the longer pass. Its report
## is printed after the serial pass's; either failing fails the target.
PARALLEL_LOG ?= .pytest-parallel.log
test: setup node-deps
	nice -n 19 $(BIN)/pytest -q -n auto --maxprocesses 4 --dist loadfile -m "not serial" \
		> $(PARALLEL_LOG) 2>&1 & parallel=$$!; \
	$(BIN)/pytest -q -m serial; second=$$?; \
	wait $$parallel; first=$$?; \
	echo "== the tests run in parallel (not serial):"; cat $(PARALLEL_LOG); rm -f $(PARALLEL_LOG); \
	test $$first -eq 0 && test $$second -eq 0

lint: setup
	$(BIN)/ruff check correlate tests benchmarks
	$(BIN)/ruff format --check correlate tests benchmarks
	$(BIN)/mypy correlate

check: lint test

format: setup
	$(BIN)/ruff format correlate tests benchmarks
	$(BIN)/ruff check --fix correlate tests benchmarks

## Re-record the otel-only samples (PostgreSQL at SAMPLES_DSN, service on SAMPLES_PORT).
SAMPLES_DSN ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
SAMPLES_PORT ?= 14301
samples-otel: setup
	CORRELATE=$(BIN)/correlate sh $(SAMPLE)/record-otel.sh $(SAMPLES_DSN) $(SAMPLES_PORT)

bench: setup
	$(PY) benchmarks/bench_ingest.py

clean:
	rm -rf $(VENV) $(NODE_SHOP)/node_modules $(NODE_MYSQL)/node_modules .pytest_cache .mypy_cache .ruff_cache build *.egg-info
