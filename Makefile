# Two commands do all the set-up on a fresh machine:
#   make stack   - install, then run the whole stack on this machine (Ctrl-C stops it)
#   make test    - install, then run the test suite (make test-fast: the tests not marked slow)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: stack test test-fast lint typecheck bench install thirdparty mutate
THIRDPARTY := .venv-thirdparty/.installed

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v redis-server >/dev/null || { echo "redis-server is missing: sudo apt-get install -y redis-server python3-venv"; exit 1; }
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

stack: $(STAMP)
	$(VENV)/bin/mcp-orch stack

# A third-party Sonarr MCP server (needs mcp<2, so it gets a venv of its own) for
# tests/media/test_third_party_mcp.py; without it that test skips. FastMCP 4 (the `fastmcp` package)
# gets a venv of its own too, for tests/test_error_classes.py (its many dependencies stay out of .venv).
FASTMCP := .venv-fastmcp/.installed
thirdparty: $(THIRDPARTY) $(FASTMCP)

$(THIRDPARTY):
	python3 -m venv .venv-thirdparty
	.venv-thirdparty/bin/pip install -q 'arr-py-client[mcp]==0.11.0' || echo "third-party MCP server not installed; its test will skip"
	touch $(THIRDPARTY)

$(FASTMCP):
	python3 -m venv .venv-fastmcp
	.venv-fastmcp/bin/pip install -q 'fastmcp==4.1.6' || echo "fastmcp not installed; its test will skip"
	touch $(FASTMCP)

test: $(STAMP) $(THIRDPARTY) $(FASTMCP)
	$(PY) -m pytest

# The tests not marked slow (no stack of real processes per test): a quick check while editing.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# mypy over orchestrator/, workers/ and beat_schedule.py (settings in pyproject.toml [tool.mypy]).
typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/run_all.py

# Mutation testing (cosmic-ray) of the modules fast unit tests judge, in a scratch copy of the tree:
# score and surviving mutants per module (tests/mutation_survivors.md keeps the reasons). Takes
# minutes, so not part of `make test` or CI. `make mutate MUTATE="redaction backoff"` picks targets.
MUTATION := $(VENV)/.mutation-installed

$(MUTATION): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,mutation]'
	touch $(MUTATION)

mutate: $(MUTATION)
	$(PY) mutation/run.py $(MUTATE)
