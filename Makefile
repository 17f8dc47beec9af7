# The README's two commands, `make sweep` and `make test`, work on a fresh machine with
# Python 3.11 and nothing else: each creates .venv and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install sweep predict test test-fast test-notf lint bench plots gpu-wheels gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tensorflow,dev]'
	touch $(STAMP)

sweep: install
	$(BIN)/batchbench sweep configs/quickstart.yaml

predict: install
	$(BIN)/batchbench predict-throughput

# Three workers on two cores (a third of the suite's time is waiting: timeouts, real-time load,
# child processes), one test file each at a time (a file shares its worker server and fixtures;
# each worker keeps a broker that imports TensorFlow once, tests/conftest.py); then, alone, the
# few tests whose memory relations another test beside them would disturb.
test: install
	$(BIN)/python -m pytest -q -n 3 --dist loadfile -m "not serial"
	$(BIN)/python -m pytest -q -m serial

# The edit-test loop: every test that needs no TensorFlow (config, plan, rows, results,
# compare, report, stats, units), in well under two minutes. TensorFlow and Keras are
# refused in the test process (tests/conftest.py), so a test that needs them must be slow.
test-fast: install
	BATCHBENCH_TEST_FAST=1 $(BIN)/python -m pytest -q -m "not slow"

# Keras 3 without TensorFlow: a second venv with the README's TensorFlow-free install line
# (pip install '.[jax]', not editable: the command as a user gets it; pytest beside it), then
# `env`, the quickstart sweep on JAX (fit, predict, serve) and the backend tests in it. CI runs
# it after `make test`.
NOTF       ?= .venv-notf
NOTF_STAMP := $(NOTF)/.installed
NOTF_RUN   := $(NOTF)/quickstart-jax

$(NOTF_STAMP): pyproject.toml $(shell find batchbench -name '*.py')
	test -x $(NOTF)/bin/python || $(PYTHON) -m venv $(NOTF)
	$(NOTF)/bin/python -m pip install --quiet --upgrade pip
	$(NOTF)/bin/python -m pip install --quiet '.[jax]'   # the README's line, as a user runs it
	$(NOTF)/bin/python -m pip install --quiet pytest
	@if $(NOTF)/bin/python -c 'import tensorflow' 2>/dev/null; then echo "$(NOTF) has TensorFlow"; exit 1; fi
	touch $@

test-notf: $(NOTF_STAMP)
	$(NOTF)/bin/batchbench env --backend jax
	rm -rf $(NOTF_RUN)
	$(NOTF)/bin/batchbench sweep configs/quickstart.yaml --backend jax --methods predict,serve --rounds 1 --out $(NOTF_RUN) -q
	$(NOTF)/bin/python -c 'import csv, sys; rows = list(csv.DictReader(open("$(NOTF_RUN)/results.csv"))); \
	  kinds = {(r["mode"], r["method"]) for r in rows}; bad = [r["trial_id"] for r in rows if r["status"] != "ok"]; \
	  print(len(rows), "rows,", sorted(kinds), "not ok:", bad); sys.exit(bool(bad) or len(kinds) != 3)'
	$(NOTF)/bin/python -m pytest -q tests/test_backends.py tests/test_backend_checks.py tests/test_notf.py

lint: install
	$(BIN)/ruff check batchbench tests

bench: install
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/bench.py --compare-scale   # compare on two 100k-row runs, every format
	$(BIN)/python benchmarks/reproduce.py               # the default quickstart sweep 3 times: does the advice hold?
	$(BIN)/python benchmarks/compare_power.py           # compare on real reruns and a slower head
	$(BIN)/python benchmarks/serving_check.py           # serving: does its max hold re-measured alone, 1.5x miss?

# The README's plot, regenerated from a real run of the quickstart config.
plots: install
	rm -rf results/readme
	$(BIN)/batchbench sweep configs/quickstart.yaml --out results/readme -q
	mkdir -p docs/images
	cp results/readme/throughput.png docs/images/quickstart-throughput.png

# The prepared device check (benchmarks/gpu_check.py). `make gpu-wheels` here downloads what
# the GPU machine lacks (keras, pydantic and their small needs; built for its Python 3.12) into
# .gpu/wheels, which travels with the tree; `make gpu-check OUT=DIR` there installs them into a
# target folder and writes env, results and a summary into DIR. With no GPU it runs a small
# version and says so (the rehearsal: GPU_PYTHON=a Python 3.12 with jax and torch).
GPU_WHEELS ?= .gpu/wheels
GPU_SITE   ?= /tmp/batchbench-gpu-site
GPU_PYTHON ?= python3
OUT        ?= results/gpu-check
GPU_PINS   := keras==3.15.1 namex==0.1.0 optree==0.20.0 pydantic==2.14.4 pydantic-core==2.50.5 \
              annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0

gpu-wheels:
	rm -rf $(GPU_WHEELS)
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d $(GPU_WHEELS) $(GPU_PINS)
	du -sh $(GPU_WHEELS)

gpu-check:
	rm -rf $(GPU_SITE)
	$(GPU_PYTHON) -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target $(GPU_SITE) $(GPU_WHEELS)/*.whl
	PYTHONPATH=$(GPU_SITE):$(CURDIR) $(GPU_PYTHON) benchmarks/gpu_check.py --out $(OUT)

clean:
	rm -rf $(VENV) .venv-notf .gpu build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
