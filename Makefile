# resnext_plugin: `make test` and `make demo` install what they need first.
SHELL := /bin/bash
# A stack is one pinned set of the frameworks in a venv of its own (README, "Supported stacks"):
#   pins      .venv            requirements/constraints.txt (the default: mmcv built, mmdet, mmpretrain)
#   <name>    .venv-<name>     requirements/stack-<name>.txt: backbone, lite-cls, onedl-lite,
#                              onedl, onedl-torch2.15, upstream-2023, upstream-2023-det
# e.g. `make install STACK=lite-cls`, `make test STACK=onedl`. The `# tests:` lines of a stack file
# name the test files that apply to it; `# mmcv-build: <distribution>` builds that mmcv once per
# build key into the wheel cache (tools/install_mmcv.py).
STACK ?= pins
ifeq ($(STACK),pins)
VENV ?= .venv
STACK_FILE := requirements/constraints.txt
else
VENV ?= .venv-$(STACK)
STACK_FILE := requirements/stack-$(STACK).txt
ifeq ($(wildcard $(STACK_FILE)),)
$(error STACK=$(STACK): no $(STACK_FILE); stacks: pins $(patsubst requirements/stack-%.txt,%,$(wildcard requirements/stack-*.txt)))
endif
endif
STACK_TESTS := $(shell sed -n 's/^\# tests://p' $(STACK_FILE))
MMCV_BUILD := $(strip $(shell sed -n 's/^\# mmcv-build://p' $(STACK_FILE)))
PY := $(VENV)/bin/python
UV ?= $(or $(shell command -v uv 2>/dev/null),python3 -m uv)
# requirements/stack-<name>.overrides (optional): uv overrides, e.g. to drop a dependency that
# another distribution of the same import name provides.
OVERRIDES := $(wildcard $(STACK_FILE:.txt=.overrides))
PIN := -c $(STACK_FILE) $(if $(OVERRIDES),--override $(OVERRIDES))
UVPIP = $(UV) pip install --python $(PY) $(PIN)
# mmcv's CPU/CUDA ops build with this many compiler jobs.
MAX_JOBS ?= $(shell nproc)
# mmcv is built once per (mmcv distribution and version, torch, CUDA, Python, platform) into a wheel
# cache shared by every clone: $RESNEXT_PLUGIN_WHEEL_CACHE, else
# ~/.cache/resnext_plugin/mmcv-wheels (XDG_CACHE_HOME). tools/install_mmcv.py verifies a cached
# wheel (sha256, CRCs, mmcv.ops runs) and rebuilds it if bad.

.PHONY: install test test-all test-isolated test-random demo lint clean-venv

# The stamp file is written last, so an interrupted install is redone, not trusted.
ifeq ($(STACK),pins)
$(VENV)/.installed: requirements/constraints.txt requirements/tests.txt requirements/export.txt \
		pyproject.toml
	$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) venv --allow-existing --python 3.11 $(VENV)
	$(UVPIP) torch torchvision
	$(UVPIP) setuptools wheel ninja psutil
	MAX_JOBS=$(MAX_JOBS) $(PY) tools/install_mmcv.py --python $(PY) --uv "$(UV)" \
		--constraints requirements/constraints.txt
	$(UVPIP) mmengine mmpretrain mmdet pycocotools "numpy>=2" matplotlib -r requirements/tests.txt
	$(UVPIP) -r requirements/export.txt
	$(UVPIP) --no-build-isolation --no-deps -e .
	$(PY) -c "import mmcv.ops, mmdet, mmpretrain, resnext_plugin; print('stack OK: mmcv', mmcv.__version__)"
	touch $@

else
# Another stack: everything from its file (exact pins), the compiled mmcv from the wheel cache.
$(VENV)/.installed: $(STACK_FILE) pyproject.toml
	$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) venv --allow-existing --python 3.11 $(VENV)
	$(UVPIP) torch "setuptools>=77" wheel
ifneq ($(MMCV_BUILD),)
	$(UVPIP) ninja psutil
	MMCV_WITH_OPS=1 MAX_JOBS=$(MAX_JOBS) $(PY) tools/install_mmcv.py --python $(PY) --uv "$(UV)" \
		--dist $(MMCV_BUILD) --constraints $(STACK_FILE)
endif
	$(UVPIP) -r $(STACK_FILE)
	$(UV) pip install --python $(PY) --no-build-isolation --no-deps -e .
	$(PY) -c "import mmcv, mmengine, resnext_plugin; print('stack $(STACK) OK: mmengine', mmengine.__version__, 'mmcv', mmcv.__version__)"
	touch $@
endif

install: $(VENV)/.installed

# A fixed order here (CI); `make test-random` shuffles it, `make test-isolated` runs files alone.
test: install
	$(PY) -m pytest -q -p no:randomly $(STACK_TESTS) $(PYTEST_ARGS)

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
