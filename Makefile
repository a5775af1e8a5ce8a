# The two commands a newcomer runs: `make run` and `make test`. Each sets everything up first.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

run: setup
	@bash scripts/run-demo.sh

test: setup lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python bench/analyze.py
	$(BIN)/python bench/proxy.py
	$(BIN)/python bench/hostile.py
	$(BIN)/python bench/fuzz.py
	$(BIN)/python bench/chaos.py
	$(BIN)/python bench/controlplane.py
	$(BIN)/python bench/csr.py
	$(BIN)/python bench/mtls.py
	$(BIN)/python bench/up.py
	$(BIN)/python bench/capture.py
	$(BIN)/python bench/cli.py
	@command -v valgrind >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null)
	$(BIN)/python bench/instructions.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
