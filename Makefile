# Entry points for people and CI. Every target creates the virtualenvs it
# needs from the pinned requirement files when they are missing or stale.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev

.PHONY: setup render test lint clean

$(VENV)/.installed: requirements.txt requirements-dev.txt app/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed ## Create .venv from the pinned lists

render: setup ## Render and validate one stack offline: make render STACK=dev
	$(PY) -m tools.render $(STACK)

lint: setup ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test: lint ## Lint, then the whole test suite
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
