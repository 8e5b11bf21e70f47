# monitorctl: `make demo` and `make test` work on a fresh Debian/Ubuntu machine with python3 and
# PostgreSQL 15 (the pg_cron package is installed if missing).

PYTHON     ?= python3
VENV       ?= .venv
PG_MAJOR   ?= 15
PGCRON_LIB := /usr/lib/postgresql/$(PG_MAJOR)/lib/pg_cron.so
SUDO       := $(if $(filter 0,$(shell id -u)),,sudo)
STAMP      := $(VENV)/.monitorctl-installed

.PHONY: venv pgcron test demo schema-dump clean distclean

## venv: create .venv and install monitorctl (editable) with its test dependencies
venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

## pgcron: install pg_cron for PostgreSQL $(PG_MAJOR) when its library is missing
pgcron:
	@if [ ! -e $(PGCRON_LIB) ]; then \
	  echo "installing postgresql-$(PG_MAJOR)-cron"; \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y postgresql-$(PG_MAJOR)-cron; \
	fi

## test: the whole suite against a throwaway PostgreSQL, slow tests included
test: venv pgcron
	@$(VENV)/bin/pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$rc

## demo: a throwaway PostgreSQL with pg_cron, a synthetic ledger with anomalies, and what was found
demo: venv pgcron
	$(VENV)/bin/monitorctl demo

## schema-dump: regenerate tests/migration/schema.sql from a fresh install
schema-dump: venv
	MONITOR_UPDATE_SCHEMA=1 $(VENV)/bin/pytest -q tests/migration/test_schema_dump.py

clean:
	rm -rf build dist .pytest_cache

distclean: clean
	rm -rf $(VENV)

.PHONY: test-server test-docker

## test-docker: the SQL, migration, acceptance and ledger-shape tests against PostgreSQL in a Docker
## container (testcontainers); installs docker.io and mmdebstrap when missing, starts dockerd when none
## answers, builds the base image from Debian's archive when no registry is reachable, and removes
## every container and daemon it started (docs/containers.md)
test-docker: venv
	@bash docker/test-docker.sh

## test-server: the server against a real Prometheus (and promtool) and in a real headless Chromium
test-server: venv pgcron
	@if ! command -v prometheus >/dev/null || ! command -v chromedriver >/dev/null; then \
	  echo "installing prometheus, chromium and chromium-driver"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus chromium chromium-driver; \
	fi
	$(VENV)/bin/pytest -q -o addopts="-ra" tests/server

.PHONY: test-citus

## test-citus: the Citus suite (tests/citus), the SQL scenario tests and the acceptance tests against a
## three-node Citus cluster on this machine (a coordinator with pg_cron, two workers); every test is
## skipped, with the reason, when Citus is not installed (docs/scaling.md)
test-citus: venv pgcron
	MONITOR_TEST_BACKEND=citus $(VENV)/bin/pytest -q -o addopts="-ra" tests/citus tests/sql tests/acceptance \
	  tests/integration/test_cron_tick.py

.PHONY: bench bench-smoke

## bench: the benchmark at the default scale (10M transactions; about 20 minutes on 2 cores), see docs/benchmarks.md
bench: venv pgcron
	$(VENV)/bin/python -m bench.run $(if $(SCALE),--scale $(SCALE))

## bench-smoke: the benchmark at its smallest scale, checked for every figure (what CI runs after make test)
bench-smoke: venv pgcron
	$(VENV)/bin/pytest -q -o addopts="-ra" tests/bench
