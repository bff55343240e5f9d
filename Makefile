# Set-up is part of every target: each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || ! command -v sudo >/dev/null 2>&1 || echo sudo)

.PHONY: demo test lint docs bench redis-server chromium postgresql screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

# The demo needs only the package with its command line (rich) and redis-py, so that
# `sharedctx demo --backend redis://...` works too; not the dev tools.
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[cli,redis]'
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/sharedctx demo

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(SPHINX) -q docs docs/_build/html

# The docs site into docs/_build/html (make lint, and so make test, builds it too).
# -W --keep-going: every warning and broken reference is listed, and fails the build.
SPHINX = $(BIN)/sphinx-build -W --keep-going -b html

docs: $(VENV)/.installed
	$(SPHINX) docs docs/_build/html

test: lint redis-server chromium
	$(BIN)/pytest

bench: $(VENV)/.installed redis-server chromium postgresql
	$(BIN)/python benchmarks/run.py --publish

# The Redis tests start their own redis-server; install it when it is missing and
# apt-get is available. Without it those tests are skipped (they fail under CI=true).
redis-server:
	@command -v redis-server >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  $(SUDO) apt-get install -y -q redis-server >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q redis-server >/dev/null; } || \
	  echo "warning: could not install redis-server; the Redis tests will be skipped"

# The web view's tests, benchmarks and screenshots drive Debian's chromium with
# Playwright (never Playwright's own browser download); installed like redis-server.
chromium:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  $(SUDO) apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium >/dev/null; } || \
	  echo "warning: could not install chromium; the browser tests will be skipped"

# The peer comparison of `make bench` runs LangGraph's PostgresStore on a PostgreSQL that
# it starts itself (initdb into a temporary directory, a free loopback port): only the
# server's programs are needed. The drop-in below, read by Debian's postgresql-common,
# keeps the package from creating and starting a cluster of its own (port 5432).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  ! command -v apt-get >/dev/null 2>&1 || \
	  { $(SUDO) mkdir -p /etc/postgresql-common/createcluster.d && \
	    echo 'create_main_cluster = false' | \
	      $(SUDO) tee /etc/postgresql-common/createcluster.d/sharedctx-bench.conf >/dev/null && \
	    { $(SUDO) apt-get install -y -q postgresql >/dev/null 2>&1 || \
	      { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q postgresql >/dev/null; }; }; } || \
	  echo "warning: could not install postgresql; the PostgresStore comparison will be skipped"

# The docs' screenshots of the web view (docs/guides/images/), taken during a demo run.
screenshots: $(VENV)/.installed chromium
	$(BIN)/python -m tests.web.screenshots docs/guides/images

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis docs/_build .venv-oldest

# The second, smaller step of `make test`: the oldest versions that pyproject.toml
# allows (each lower bound of the core, cli, redis and sealed dependencies, pinned; a
# test checks that these pins are those bounds), with the tests that depend most on
# redis-py and cryptography: the conformance kit on Redis and Redis Cluster (sealed on
# Redis: the cluster adds nothing to cryptography's part), the sealed first-write
# tests, and the cluster, protocol and fault tests. The newest versions are what
# .venv holds.
OLDEST := .venv-oldest
OLDEST_PINS := msgspec==0.18.6 sortedcontainers==2.4.0 pydantic==2.10.0 rich==13.7.0 \
	redis==7.4.0 hiredis==3.0.0 cryptography==42.0.0

.PHONY: test-oldest
test: test-oldest

$(OLDEST)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install -q --upgrade pip
	$(OLDEST)/bin/python -m pip install -q -e '.[cli,redis,sealed,testing]' pytest-timeout \
	  $(OLDEST_PINS)
	touch $@

test-oldest: $(OLDEST)/.installed redis-server
	$(OLDEST)/bin/pytest -q -k "(redis or cluster) and not (TestSealedBackends and cluster)" \
	  tests/test_conformance.py \
	  tests/sealed/test_conformance_sealed.py tests/sealed/test_first_write.py \
	  tests/backends/redis/test_cluster.py tests/backends/redis/test_protocol.py \
	  tests/backends/redis/test_faults.py
