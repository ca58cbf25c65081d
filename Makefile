# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The PostgreSQL server the tests use; started and prepared by `make pg`.
PG_URL ?= postgresql+psycopg://writeback:writeback@127.0.0.1:5432/writeback_test
export WRITEBACK_TEST_PG_URL ?= $(PG_URL)

# `make chaos` runs the seeds CI runs; `make chaos SEED=17 [BACKEND=sqlite]` replays one schedule;
# `make chaos SEEDS=10000 [FIRST=1]` runs many; `WITHOUT=poison,kill` leaves those kinds of fault out.
# Each schedule's faults and violations go to $(RECORD).
SEED ?=
SEEDS ?=
FIRST ?= 1
BACKEND ?=
WITHOUT ?=
RECORD ?= chaos-results.jsonl

.PHONY: run test install pg lint bench-seed clean chaos

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/writeback-console demo

pg:
	bash tests/helpers/start_postgres.sh

test: $(STAMP) pg lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -p no:cacheprovider

chaos: $(STAMP) pg
	: > "$(RECORD)"
	CHAOS_SEED="$(SEED)" CHAOS_SEEDS="$(SEEDS)" CHAOS_FIRST="$(FIRST)" CHAOS_BACKEND="$(BACKEND)" CHAOS_WITHOUT="$(WITHOUT)" \
	CHAOS_RECORD="$(abspath $(RECORD))" QT_QPA_PLATFORM=offscreen \
	$(BIN)/python -m pytest -p no:cacheprovider tests/chaos -q; \
	status=$$?; test -s "$(RECORD)" && $(BIN)/python -m tests.chaos.summarize "$(RECORD)"; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check writeback_console tests bench
	$(BIN)/ruff format --check writeback_console tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) build *.egg-info
