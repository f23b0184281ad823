# The two commands of the README: `make run` (the demo) and `make test`.
# Each creates .venv and installs the project into it when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test files run in this many processes (pytest-xdist); a file's tests stay in one process.
TEST_WORKERS ?= 2

.PHONY: run test install clean bench

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgres]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/xdshub demo --data-dir var/demo

test: $(STAMP)
	XDSHUB_SCHEMAS=$${XDSHUB_SCHEMAS-$(if $(wildcard ../shared/schemas),$(abspath ../shared/schemas))} \
	XDSHUB_SAMPLES=$${XDSHUB_SAMPLES-$(if $(wildcard ../shared/samples),$(abspath ../shared/samples))} \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/registry_bench.py

clean:
	rm -rf $(VENV) var *.egg-info
