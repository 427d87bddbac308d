# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates or refreshes .venv from pyproject.toml before it runs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.symland-installed
OUT    ?= results/toy

.PHONY: demo test test-all bench setup data clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP) data

# Debian's Fashion-MNIST IDX files, used by the MNIST-style tests and demos.
# Best effort: needs root and apt; the tests that need it skip cleanly without it.
data:
	@if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
	  echo "note: dataset-fashion-mnist could not be installed; tests that need it will skip"; \
	fi

# The paper's setting (ReLU; its fixed-δ problem is degenerate, and the report
# says so step by step), then the softplus toy whose paths converge and whose
# pairs 0&1, 0&3, 2&3 reach the same 4-neuron configuration (Fig. 1 A/B).
demo: setup
	$(VENV)/bin/symland toy --out $(OUT)
	$(VENV)/bin/symland toy --activation softplus --seed 6 --out $(OUT)-softplus

test: setup
	$(PY) -m pytest -q -n 2 -m "not slow"

test-all: setup
	$(PY) -m pytest -q -n 2

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) results .pytest_cache
