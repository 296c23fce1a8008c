# Bootstrap a local virtual environment, then run the demo or the tests.
#
#   make demo          the dhvae_brats bundle's main job on the built-in phantom data (every stage + Dice table)
#   make test          the test suite
#
# The first call creates $(VENV) with the CPU torch $(TORCH_SPEC) installed *before* the package, so
# pip keeps it instead of pulling a multi-GB CUDA build. With an environment of your own (for example a
# CUDA torch), skip the bootstrap:  pip install -e ".[test]"  then  make test PYTHON=python
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTHON ?= $(VENV)/bin/python
DEMO_DIR ?= runs/dhvae_brats

ifeq ($(PYTHON),$(VENV)/bin/python)
BOOTSTRAP := $(VENV)/.bootstrapped
endif

.PHONY: demo test clean-venv

$(VENV)/.bootstrapped: setup.py
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install "$(TORCH_SPEC)"
	$(VENV)/bin/python -m pip install -e ".[test]"
	touch $@

demo: $(BOOTSTRAP)
	$(PYTHON) -m dhvae_monai.pipeline bundles/dhvae_brats --output_dir $(DEMO_DIR)

test: $(BOOTSTRAP)
	$(PYTHON) -m pytest tests

clean-venv:
	rm -rf $(VENV)
