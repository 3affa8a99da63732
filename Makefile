# resnext_plugin: `make test` and `make demo` install what they need first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
UV ?= $(or $(shell command -v uv 2>/dev/null),python3 -m uv)
PIN := -c requirements/constraints.txt
UVPIP = $(UV) pip install --python $(PY) $(PIN)
# mmcv's CPU/CUDA ops build with this many compiler jobs.
MAX_JOBS ?= $(shell nproc)

.PHONY: install test test-all demo lint clean-venv

# The stamp file is written last, so an interrupted install is redone, not trusted.
$(VENV)/.installed: requirements/constraints.txt requirements/tests.txt setup.py
	$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) venv --allow-existing --python 3.11 $(VENV)
	$(UVPIP) torch torchvision
	$(UVPIP) setuptools wheel ninja psutil
	MAX_JOBS=$(MAX_JOBS) $(UVPIP) --no-build-isolation mmcv
	$(UVPIP) mmengine mmpretrain mmdet pycocotools "numpy>=2" matplotlib -r requirements/tests.txt
	$(UVPIP) --no-build-isolation --no-deps -e .
	$(PY) -c "import mmcv.ops, mmdet, mmpretrain, resnext_plugin; print('stack OK: mmcv', mmcv.__version__)"
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest -q --runslow $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check resnext_plugin tools tests configs

demo: install
	$(PY) tools/demo_pipeline.py

clean-venv:
	rm -rf $(VENV)
