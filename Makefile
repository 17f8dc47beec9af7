# The README's two commands, `make sweep` and `make test`, work on a fresh machine with
# Python 3.11 and nothing else: each creates .venv and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install sweep predict test test-fast lint bench plots clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

sweep: install
	$(BIN)/batchbench sweep configs/quickstart.yaml

predict: install
	$(BIN)/batchbench predict-throughput

# Two workers, one test file each at a time (a file shares its worker server and fixtures);
# then, alone, the few tests whose memory relations another test beside them would disturb.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not serial"
	$(BIN)/python -m pytest -q -m serial

# The edit-test loop: every test that needs no TensorFlow (config, plan, rows, results,
# compare, report, stats, units), in well under two minutes. TensorFlow and Keras are
# refused in the test process (tests/conftest.py), so a test that needs them must be slow.
test-fast: install
	BATCHBENCH_TEST_FAST=1 $(BIN)/python -m pytest -q -m "not slow"

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

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
