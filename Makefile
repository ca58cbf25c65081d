# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The PostgreSQL server the tests use; started and prepared by `make pg`.
PG_URL ?= postgresql+psycopg://writeback:writeback@127.0.0.1:5432/writeback_test
export WRITEBACK_TEST_PG_URL ?= $(PG_URL)

.PHONY: run test install pg lint bench-seed clean

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

lint: $(STAMP)
	$(BIN)/ruff check writeback_console tests bench
	$(BIN)/ruff format --check writeback_console tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
