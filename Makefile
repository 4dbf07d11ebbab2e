# Two commands on a fresh machine: `make run` (build + evaluate + serve) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export OPENBLAS_NUM_THREADS := 1
export NEXTWATCH_DATA_DIR ?= ./data
PORT ?= 8000

.PHONY: install system-deps run test build tune evaluate serve clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# PostgreSQL server binaries for the integration tests (Debian's `postgresql`) and Chromium for the page's
# browser tests (Debian's `chromium`, Korean fonts for its screenshots); nothing to do when present.
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	fi
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; \
	fi

run: install
	$(BIN)/nextwatch demo --host 127.0.0.1 --port $(PORT)

test: install system-deps
	$(BIN)/pytest -q

build: install
	$(BIN)/nextwatch build

tune: install
	$(BIN)/nextwatch tune

evaluate: install
	$(BIN)/nextwatch evaluate --report $(NEXTWATCH_DATA_DIR)/report

serve: install
	$(BIN)/nextwatch serve --port $(PORT)

clean:
	rm -rf $(VENV) build *.egg-info
