# dualcam-rt: `make demo` to try it, `make test` to check it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: install install-test install-gpu gpu-check-wheels system-demo system-test demo soundbank lint test bench clean

# Debian packages beyond Python (apt-get as root; otherwise one line with the command to run).
system-demo:
	@PYTHON=$(PYTHON) sh deploy/system-packages.sh demo

system-test:
	@PYTHON=$(PYTHON) sh deploy/system-packages.sh test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# CPU serving install (onnxruntime, sounddevice).
$(VENV)/.stamp-install: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[cpu,audio]"
	touch $@

# Everything the test suite needs: + dev tools, + the offline training module (torch 2.13.0, CPU).
$(VENV)/.stamp-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[cpu,audio,dev,train]"
	touch $@

install: $(VENV)/.stamp-install

install-test: $(VENV)/.stamp-test

# GPU serving install in its own venv: the CPU onnxruntime wheel would shadow onnxruntime-gpu.
install-gpu:
	$(PYTHON) -m venv .venv-gpu
	.venv-gpu/bin/python -m pip install -q --upgrade pip
	.venv-gpu/bin/python -m pip install -q -e ".[gpu,audio]"

# Wheels for benchmarks/gpu_check.sh on the borrowed H200 (cp312), into the ignored benchmarks/gpu_wheels/
# that the device call carries. The check needs none today (everything it imports is on that image);
# name extra packages in GPU_WHEELS, e.g. make gpu-check-wheels GPU_WHEELS="pydantic==2.11.7 pydantic-core==2.33.2".
GPU_WHEELS ?=
gpu-check-wheels: | $(BIN)/python
	mkdir -p benchmarks/gpu_wheels
	$(if $(strip $(GPU_WHEELS)),$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	    --platform manylinux2014_x86_64 -d benchmarks/gpu_wheels $(GPU_WHEELS),@echo "nothing to fetch: the GPU check needs no package beyond the H200 image")
	@du -sh benchmarks/gpu_wheels

demo: system-demo install
	$(BIN)/dualcam-rt serve "sim://?scenario=1&seed=0" --host $(HOST) --port $(PORT)

# The bank of real recorded sounds (docs/soundbank.md): installs the allow-listed packages
# (apt; the heavy ones unpacked under <cache_dir>/sound-sources; keebsound with pip --no-deps), builds the full bank.
soundbank: install
	sh deploy/install-sound-sources.sh full "" $(BIN)/pip
	$(BIN)/dualcam-rt soundbank build --preset full

# Lint, format and types ([tool.ruff], [tool.mypy] in pyproject.toml); `ruff format FILE` fixes a file's layout.
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: system-test install-test lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .venv-gpu .pytest_cache build *.egg-info
