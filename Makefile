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
	@# A bare Debian/Ubuntu has Python without its venv module: install it as root, or say how.
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv; \
	  else \
	    echo "writeback-console: Python's venv module is missing; install it with: sudo apt-get install -y python3-venv" >&2; \
	    exit 1; \
	  fi; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@# Compiled once here, as a wheel install does: the first window does not wait for bytecode.
	$(BIN)/python -m compileall -q writeback_console resources sql
	touch $(STAMP)

install: $(STAMP)

# The system check comes before anything slow: Qt's missing system libraries are installed (as root) or
# named with the apt-get line to run, and a machine without a display is told so.
run: $(STAMP)
	$(BIN)/python -m writeback_console.system_check --for window --install
	$(BIN)/writeback-console demo

pg:
	bash tests/helpers/start_postgres.sh

test: $(STAMP) pg lint
	$(BIN)/python -m writeback_console.system_check --for tests --install
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
