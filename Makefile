# Tradewatch: `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell cat pyproject.toml | sha1sum | cut -c1-12)
# What is installed, per pyproject.toml version: the runtime, or the runtime plus the test tools
# and the Spark session the compatibility tests need (pyspark alone is ~600 MB).
STAMP := $(VENV)/.installed-runtime-$(HASH)
STAMP_DEV := $(VENV)/.installed-dev-$(HASH)
STAMP_DOCS := $(VENV)/.installed-docs-$(HASH)

# Nothing calls home.
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
# Material and a plugin print notices about MkDocs' future on every build: not our warnings.
export NO_MKDOCS_2_WARNING := 1
export DISABLE_MKDOCS_2_WARNING := true

.PHONY: setup setup-dev demo test test-fast bench screenshots lint docs calendar clean

setup: $(STAMP)
setup-dev: $(STAMP_DEV)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@rm -f $(VENV)/.installed-runtime-* && touch $@

$(STAMP_DEV): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,spark,docs]'
	@rm -f $(VENV)/.installed-dev-* && touch $@

$(STAMP_DOCS): $(STAMP)
	$(BIN)/pip install --quiet -e '.[docs]'
	@rm -f $(VENV)/.installed-docs-* && touch $@

demo: setup
	$(BIN)/tradewatch demo

# Two workers (the CI machine's two cores), a test file each at a time: a file's tests share
# their expensive set-ups, and the longest files start first (tests/conftest.py).
XDIST := -n 2 --dist loadfile --no-loadscope-reorder

test: setup-dev
	$(BIN)/pytest $(XDIST)

test-fast: setup-dev
	$(BIN)/pytest $(XDIST) -m "not slow"

# Every benchmark but the screenshots (those need Chromium: `make screenshots`).
bench: setup-dev
	@for b in bench/*/run.py bench/train/latency.py; do \
	  case $$b in bench/screenshots/*) continue;; esac; \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Headless-Chromium screenshots of the Prefect UI and the HTML reports of the data home.
screenshots: setup-dev
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/python bench/screenshots/run.py
	$(BIN)/python bench/quality/screenshot.py

# The documentation site into site/ (docs/, mkdocs.yml); any warning fails the build.
docs: $(STAMP_DOCS)
	$(BIN)/mkdocs build --strict

# Regenerate the US exchange holidays and half days seed from the installed exchange_calendars.
calendar: setup
	$(BIN)/python -c "from core.markets import write_calendar_seed; print(write_calendar_seed(), 'days')"

# Ruff; mypy (strict on the floor core/, mypy's normal mode on the libraries and flows: see
# [tool.mypy] in pyproject.toml); SQLFluff on dbt_project/ (.sqlfluff), the SQL rendered by dbt
# with the local DuckDB target in a scratch data home: no warehouse to build, nothing touched.
lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	@home=$$(mktemp -d) && trap 'rm -rf "$$home"' EXIT && \
	  echo "sqlfluff lint dbt_project" && TRADEWATCH_HOME="$$home" $(BIN)/sqlfluff lint dbt_project

clean:
	rm -rf site data dbt_project/target dbt_project/logs spark-warehouse metastore_db derby.log
