# rramsim: `make demo` and `make test` do all the set-up on a fresh Debian 12 machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/pip -q --disable-pip-version-check
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0
# Prefer a local CPU wheel (it lies on disk on the project's machines) over the registry.
TORCH_WHEELS ?= /opt/wheels

.PHONY: all setup ngspice data demo lint test test-all bench clean aihwkit

all: test

ngspice:
	bash scripts/install-ngspice.sh

$(STAMP): pyproject.toml constraints.txt
	$(MAKE) ngspice
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install --find-links $(TORCH_WHEELS) $(TORCH)
	$(PIP) install -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# MNIST and Fashion-MNIST into the data root (RRAMSIM_DATA or ~/.cache/rramsim); idempotent
data: $(STAMP)
	bash scripts/install-datasets.sh $(BIN)

demo: $(STAMP) data
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) lint data aihwkit
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP) lint data aihwkit
	$(BIN)/python -m pytest -q

# IBM aihwkit 1.2.0, built from source once (no wheel for Python 3.11; pip caches the built wheel,
# so a new venv on the same machine installs it in seconds). `make test` installs it so that
# tests/test_aihwkit_interop.py runs the table's noise model and a network inside the real aihwkit.
AIHWKIT := $(VENV)/.aihwkit
aihwkit: $(AIHWKIT)

$(AIHWKIT): $(STAMP)
	bash scripts/install-aihwkit.sh $(BIN) constraints.txt
	touch $(AIHWKIT)

bench: $(STAMP)
	$(BIN)/python bench/characterize.py --backend osdi --full

clean:
	rm -rf $(VENV) build *.egg-info demo-out
