# h3lab: two commands do everything on a fresh machine -- `make study` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint serve study lab clean

# The venv is (re)built when pyproject.toml changes: it is the one list of dependencies.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check h3lab tests
	$(BIN)/ruff format --check h3lab tests

test: $(STAMP) lint
	$(BIN)/python -m pytest

serve: $(STAMP)
	$(BIN)/h3lab serve h3lab.examples.demo:app --preset balanced --port 3000

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
