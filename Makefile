# h3lab: two commands do everything on a fresh machine -- `make study` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint serve study lab figures clean

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
	$(BIN)/mypy

# Several workers (pytest-xdist): the suite mostly waits on servers, kernels and sockets, so
# more workers than cores pays; tests/scheduling.py hands the longest out first.
TEST_WORKERS ?= 4

test: $(STAMP) lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not serial"
	$(BIN)/python -m pytest -p no:cacheprovider -m serial

# Serving needs only the core install: a small venv of its own, not the research stack.
SERVE_VENV ?= .venv-serve
SERVE_STAMP := $(SERVE_VENV)/.installed-stamp

$(SERVE_STAMP): pyproject.toml
	test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SERVE_VENV)/bin/python -m pip install --quiet -e .
	touch $(SERVE_STAMP)

serve: $(SERVE_STAMP)
	$(SERVE_VENV)/bin/h3lab serve h3lab.examples.demo:app --preset balanced --port 3000

# The research suite: every notebook (default sizes), then the report. The report
# is built even if a study failed; the failure is then the exit status.
study: $(STAMP)
	$(BIN)/h3lab study all; status=$$?; \
	$(BIN)/h3lab study report; \
	exit $$status

# JupyterLab on notebooks/ with the venv's kernel (checked, installed into the venv if shadowed).
# Jupyter refuses root unless told; root is the usual user in a container.
lab: $(STAMP)
	$(BIN)/h3lab study kernel
	$(BIN)/jupyter lab --notebook-dir=notebooks $$(test "$$(id -u)" = 0 && echo --allow-root)

# The README's figures, regenerated from a fresh full run.
figures: study
	$(BIN)/h3lab study figures

clean:
	rm -rf $(VENV) $(SERVE_VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
