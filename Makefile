# Every target is idempotent: the venv is (re)built only when the pins change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ARGS ?=

.PHONY: install demo test test-slow bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with pinned versions

demo: install  ## the main job, end to end, on a local Ray cluster started by the program
	$(BIN)/tala-ray demo $(DEMO_ARGS)

test: install  ## the test suite (what CI runs)
	$(BIN)/python -m pytest -m "not slow"

test-slow: install  ## long workloads (quality bars on 50k applicants)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) .pytest_cache
