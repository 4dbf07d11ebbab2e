# Two commands on a fresh machine: `make run` (build + evaluate + serve) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export OPENBLAS_NUM_THREADS := 1
# Python keeps the bytecode of what it imports (uv installs none): where the environment sets
# PYTHONDONTWRITEBYTECODE, every process would compile the libraries it imports from source again (1.2 CPU s
# more to import the API, two workers' start 3.4-3.7 -> 2.1-2.4 s at 32M shape; BENCHMARKS.md, session 13)
unexport PYTHONDONTWRITEBYTECODE
export NEXTWATCH_DATA_DIR ?= ./data
PORT ?= 8000

.PHONY: install lock system-deps run test test-fast lint format docs build tune evaluate serve clean peer-deps

install: $(STAMP)

# the pinned versions of requirements.lock, then the project itself (editable, no further resolution), with
# uv (pinned by the lock); uv reads pip's find-links from UV_FIND_LINKS, so pass on a machine's PIP_FIND_LINKS
UV := UV_FIND_LINKS="$${UV_FIND_LINKS:-$${PIP_FIND_LINKS:-}}" $(BIN)/uv pip install --quiet --python $(BIN)/python
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $$(grep '^uv==' requirements.lock)
	$(UV) -r requirements.lock
	$(UV) --no-deps -e .
	touch $(STAMP)

# re-resolve pyproject.toml's ranges into requirements.lock (then commit it)
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[test,dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^nextwatch' > requirements.lock
	rm -rf .lock-venv

# Debian packages the tests and benchmarks use: the PostgreSQL server (integration tests start a throwaway
# one), Chromium and Korean fonts (the page's browser tests and screenshots) and wrk (bench/api_latency.py);
# nothing to do when present.
system-deps:
	@SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); NEED=""; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then NEED="$$NEED postgresql"; fi; \
	if [ ! -x /usr/bin/chromium ]; then NEED="$$NEED chromium fonts-noto-cjk"; fi; \
	if ! command -v wrk >/dev/null 2>&1; then NEED="$$NEED wrk"; fi; \
	if [ -n "$$NEED" ]; then \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$NEED; \
	fi

run: install
	$(BIN)/nextwatch demo --host 127.0.0.1 --port $(PORT)

test: install system-deps
	$(BIN)/pytest -q

# unit tests only: no embedding model, no servers, no browser (under 30 s)
test-fast: install
	$(BIN)/pytest -q -m "not integration"

lint: install
	$(BIN)/ruff check services pipelines tests bench
	$(BIN)/ruff format --check services pipelines tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix services pipelines tests bench
	$(BIN)/ruff format services pipelines tests bench

# the generated reference pages (a test fails while they are stale)
docs: install
	$(BIN)/python -m pipelines.config_reference > docs/configuration.md

build: install
	$(BIN)/nextwatch build

tune: install
	$(BIN)/nextwatch tune

evaluate: install
	$(BIN)/nextwatch evaluate --report $(NEXTWATCH_DATA_DIR)/report

serve: install
	$(BIN)/nextwatch serve --port $(PORT)

# a peer implementation for bench/peer_sasrec.py (RecTools' SASRec), beside the venv: it uses the venv's torch
# and numpy, and pandas 2 (RecTools 0.19 does not run on pandas 3)
peer-deps: install
	$(BIN)/pip install --quiet --target .peer-site --no-deps rectools==0.19.0 pytorch-lightning==2.6.6 \
		lightning-utilities==0.15.3 torchmetrics==1.9.0 typeguard==4.6.1 pandas==2.3.3 pytz==2025.2

clean:
	rm -rf $(VENV) .peer-site build *.egg-info
