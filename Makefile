# Two commands do all the set-up on a fresh machine:
#   make stack   - install, then run the whole stack on this machine (Ctrl-C stops it)
#   make test    - install, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: stack test lint bench install

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v redis-server >/dev/null || { echo "redis-server is missing: sudo apt-get install -y redis-server"; exit 1; }
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

stack: $(STAMP)
	$(VENV)/bin/mcp-orch stack

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) bench/run_all.py
