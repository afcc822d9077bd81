# One entry point: `make run` starts the console, `make test` runs the suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell command -v pyenv >/dev/null 2>&1 && pyenv which python 2>/dev/null || command -v python3.12 || command -v python3)
STAMP := $(VENV)/.installed
# Where `make run` listens: the console on HOST:PORT, the OpenAI simulator on 127.0.0.1:SIM_PORT
# (e.g. `make run PORT=8001 SIM_PORT=8766`).
HOST ?= 127.0.0.1
PORT ?= 8000
SIM_PORT ?= 8765
RUN_ENV := HOST=$(HOST) PORT=$(PORT) SIM_PORT=$(SIM_PORT)

.PHONY: run test install lint browsers clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "Python >= 3.12 is needed (see .python-version)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q ".[test]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(RUN_ENV) $(PY) scripts/check_ports.py
	@$(RUN_ENV) $(PY) scripts/ensure_env.py
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@$(RUN_ENV) bash scripts/run-console.sh

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Style, formatting and the layering contract ([tool.importlinter] in pyproject.toml).
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports --no-cache --no-logo

clean:
	rm -rf var .pytest_cache
