PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATABASE ?= fhir-ccm.db
HOST ?= 127.0.0.1
PORT ?= 8080
WORKERS ?= 2
# The example data set; examples/reconcile holds the engine's golden scenarios, not data to serve.
EXAMPLE_DATA := $(filter-out examples/reconcile/,$(sort $(wildcard examples/*/)))

.PHONY: setup serve test bench lint definitions clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: setup
	$(BIN)/python -m fhir_ccm load --database $(DATABASE) $(EXAMPLE_DATA)
	$(BIN)/python -m fhir_ccm serve --host $(HOST) --port $(PORT) --database $(DATABASE) --workers $(WORKERS)

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check fhir_ccm tests bench
	$(BIN)/ruff format --check fhir_ccm tests bench
	$(BIN)/mypy fhir_ccm

definitions: setup
	$(BIN)/python -m fhir_ccm.definitions.generate

clean:
	rm -rf $(VENV) *.egg-info
