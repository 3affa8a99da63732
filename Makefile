# resnext_plugin: `make test` and `make demo` install what they need first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
UV ?= $(or $(shell command -v uv 2>/dev/null),python3 -m uv)
PIN := -c requirements/constraints.txt
UVPIP = $(UV) pip install --python $(PY) $(PIN)
# mmcv's CPU/CUDA ops build with this many compiler jobs.
MAX_JOBS ?= $(shell nproc)
# mmcv is built once per (mmcv, torch, CUDA, Python, platform) into a wheel cache shared by every
# clone: $RESNEXT_PLUGIN_WHEEL_CACHE, else ~/.cache/resnext_plugin/mmcv-wheels (XDG_CACHE_HOME).
# tools/install_mmcv.py verifies a cached wheel (sha256, CRCs, mmcv.ops runs) and rebuilds it if bad.

.PHONY: install test test-all test-isolated test-random demo lint clean-venv

# The stamp file is written last, so an interrupted install is redone, not trusted.
$(VENV)/.installed: requirements/constraints.txt requirements/tests.txt setup.py
	$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) venv --allow-existing --python 3.11 $(VENV)
	$(UVPIP) torch torchvision
	$(UVPIP) setuptools wheel ninja psutil
	MAX_JOBS=$(MAX_JOBS) $(PY) tools/install_mmcv.py --python $(PY) --uv "$(UV)" \
		--constraints requirements/constraints.txt
	$(UVPIP) mmengine mmpretrain mmdet pycocotools "numpy>=2" matplotlib -r requirements/tests.txt
	$(UVPIP) --no-build-isolation --no-deps -e .
	$(PY) -c "import mmcv.ops, mmdet, mmpretrain, resnext_plugin; print('stack OK: mmcv', mmcv.__version__)"
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest -q --runslow $(PYTEST_ARGS)

# Each test file in a process of its own: no test may lean on another file having run first.
test-isolated: install
	@failed=""; for f in $$(find tests -name 'test_*.py' | sort); do \
		echo "== $$f"; $(PY) -m pytest -q -p no:randomly $(PYTEST_ARGS) $$f || failed="$$failed $$f"; \
	done; if [ -n "$$failed" ]; then echo "failed alone:$$failed"; exit 1; fi

# The default suite in a random order; replay one with `make test-random SEED=<seed it printed>`.
SEED ?= $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
test-random: install
	$(PY) -m pytest -q -p randomly -p no:cacheprovider --randomly-seed=$(SEED) $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check resnext_plugin tools tests configs

# All cores by default; e.g. `make demo DEMO_ARGS="--threads 1"` (tools/demo_pipeline.py --help).
demo: install
	$(PY) tools/demo_pipeline.py $(DEMO_ARGS)

clean-venv:
	rm -rf $(VENV)

# On a machine with a CUDA GPU (under 10 min): CUDA-marked tests, the CUDA benchmark table and a
# short AMP training of both demo configs; figures go to docs/benchmarks.md. Fails clearly
# without a GPU.
.PHONY: gpu-check
gpu-check: install
	$(PY) tools/gpu_check.py
