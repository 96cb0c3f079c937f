# Every target creates the virtualenv itself; only python3 is needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint docker docker-test clean soak fuzz bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m lasersell_bot demo

# The fast suite (what CI runs); test-all adds the long fault and crash runs.
test: $(STAMP)
	$(PY) -m pytest -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check lasersell_bot tests
	$(PY) -m mypy

# Soak: the daemon against the simulator under chaos, then the checks (tools/soak.py).
# Three minutes by default; e.g. make soak SOAK_ARGS="--duration 3600 --seed 7".
SOAK_ARGS ?=
soak: $(STAMP)
	$(PY) tools/soak.py $(SOAK_ARGS)

# Fuzz: the hypothesis/mutation tests at FUZZ_SCALE times their default counts (the case
# counts are printed), then atheris (coverage-guided) for ATHERIS_RUNS inputs.
FUZZ_SCALE ?= 20
ATHERIS_RUNS ?= 200000
fuzz: $(STAMP)
	LASERSELL_FUZZ_SCALE=$(FUZZ_SCALE) $(PY) -m pytest -q -s -p no:cacheprovider \
		tests/test_fuzz.py tests/test_guard_properties.py tests/test_config_fuzz.py
	$(PY) -m pip install -q --disable-pip-version-check atheris \
		|| echo "fuzz: atheris could not be installed; coverage-guided run skipped"
	$(PY) tools/fuzz_atheris.py -runs=$(ATHERIS_RUNS) -rss_limit_mb=4096

# Benchmarks (bench/README.md): signal-to-wire latency idle and under floods, ingest,
# memory, startup and micro costs, side by side with the vendor's Python SDK (installed
# into bench/.venv-sdk). Writes bench/results/latest.md and latency.png in a few minutes.
# BENCH_ARGS=--quick for a tiny run.
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info

# PYTHON_IMAGE=... builds on another base, e.g. the local one from tools/docker-base.sh
# where no container registry can be reached.
PYTHON_IMAGE ?=
docker:
	docker build $(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE)) -t lasersell-bot .

# Build the image with the legacy builder and run it against the simulator on loopback:
# healthcheck healthy, runs as uid 10001, `docker stop` exits 0 (tools/docker_test.py,
# a few minutes). Prints SKIPPED and succeeds where no Docker daemon runs; `make test`
# never needs Docker. Offline: sudo tools/docker-base.sh, then
# make docker-test PYTHON_IMAGE=lasersell-base:bookworm
docker-test: $(STAMP)
	PYTHON_IMAGE=$(PYTHON_IMAGE) $(PY) tools/docker_test.py
