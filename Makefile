# Two commands on a fresh machine with Python >= 3.11 and make: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# uv installs the same releases as pip (the same pyproject ranges) in a quarter of pip's time
# (6 s against 26 s on an idle 2-core machine, 41 s within a loaded CI run); where uv cannot be
# had or cannot reach the index pip is configured for, pip installs them. Neither compiles every
# module of every package (pip's --no-compile; uv's default): Python compiles the ones a process
# imports when it first does (see PYTHONDONTWRITEBYTECODE below).
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet uv && $(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test]' \
	  || $(BIN)/python -m pip install --quiet --no-compile -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dsrflow up

# pytest exits 5 when it collected no tests: for us that is a failure, not a pass.
# Lint, types and the layer contracts first: a finding fails the run before the tests start.
# Four pytest-xdist workers, each taking whole modules: most tests wait on servers rather than burn
# CPU, so four keep 2 cores busy (two clean clones of 2026-12-06: 632-688 s of pytest against three
# workers' 824 s; docs/testing.md#how-the-suite-is-kept-fast).
# Bytecode is cached even where the environment says not to (PYTHONDONTWRITEBYTECODE, as on CI):
# the suite starts hundreds of Python processes (stacks, workers, APIs), each of which would
# otherwise compile dsrflow's modules again, and each pytest worker would rewrite every test
# module's asserts again (about 10 s of CPU per worker on 2 cores).
# While mypy and lint-imports take one core (about 20 s on a clean clone), one collection on the
# other caches what every pytest worker would otherwise build at its start, four at once on 2
# cores: each test module's rewritten asserts and the bytecode of the modules they import (a
# worker's collection takes 16 s of CPU on a clean clone, 5 s with the cache).
PYTEST_WORKERS ?= 4
test: $(STAMP)
	$(BIN)/ruff check .
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -p no:cacheprovider --collect-only -q >/dev/null 2>&1 & \
	$(BIN)/mypy && $(BIN)/lint-imports --no-cache; rc=$$?; wait; exit $$rc
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: no tests ran" >&2; exit 1; fi; exit $$rc

# B1-B4 at full size on the embedded stack (about an hour on 2 cores); results in bench/results/,
# the summary table in BENCHMARKS.md. See BENCHMARKS.md for each one's options.
bench: $(STAMP)
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.scale
	$(BIN)/python -m bench.export
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
