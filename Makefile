# Two commands on a fresh machine: `make run` (build + evaluate + serve) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export OPENBLAS_NUM_THREADS := 1
export NEXTWATCH_DATA_DIR ?= ./data
PORT ?= 8000

.PHONY: install run test build evaluate serve clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/nextwatch demo --host 127.0.0.1 --port $(PORT)

test: install
	$(BIN)/pytest -q

build: install
	$(BIN)/nextwatch build

evaluate: install
	$(BIN)/nextwatch evaluate

serve: install
	$(BIN)/nextwatch serve --port $(PORT)

clean:
	rm -rf $(VENV) build *.egg-info
