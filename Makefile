# routeq — two commands set everything up: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck clean venv chromium bench

# the core is compiled at install (setup.py): a change to one of its sources installs again
$(STAMP): pyproject.toml $(wildcard setup.py engine/*.py schemas/*.py simulators/*.py)
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) (Python 3.11)"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@# with a C compiler the core must have compiled (pip -q hides why it did not)
	@if [ -z "$$ROUTEQ_PURE" ] && command -v cc >/dev/null 2>&1 \
	  && ! $(BIN)/routeq --version | grep -q "compiled core"; then \
	  echo "the core did not compile: $(BIN)/pip install -v -e . shows why"; exit 1; fi
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/routeq simulate --scenario demo --seed 1 --out out/demo
	@echo "(routeq is $(BIN)/routeq; other scenarios: double11, marketplace, erlang_c, erlang_a)"

# the what-if report tests render HTML in headless Chromium (Debian's package)
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

test: $(STAMP) chromium
	$(BIN)/ruff check engine schemas streams simulators benchmarks tests
	$(BIN)/mypy --strict engine schemas simulators/simulation.py simulators/metrics.py simulators/whatif_metrics.py simulators/traffic.py simulators/whatif.py
	$(BIN)/lint-imports
	$(BIN)/pytest

# the quick benchmark set (a few minutes; not part of `make test`): routeq bench --help
bench: $(STAMP)
	$(BIN)/routeq bench --quick

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.so engine/*.so schemas/*.so simulators/*.so schemas/native-sources.txt
