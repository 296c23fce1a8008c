# Bootstrap a local virtual environment, then run the demo or the tests.
#
#   make demo          the dhvae_brats bundle's main job on the built-in phantom data (every stage + Dice table)
#   make test          the test suite
#   make label-env     a separate environment $(LABEL_VENV) with MONAI Label, to serve the bundles (see below)
#
# The first call creates $(VENV) with the CPU torch $(TORCH_SPEC) installed *before* the package, so
# pip keeps it instead of pulling a multi-GB CUDA build. With an environment of your own (for example a
# CUDA torch), skip the bootstrap:  pip install -e ".[test]"  then  make test PYTHON=python
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTHON ?= $(VENV)/bin/python
DEMO_DIR ?= runs/dhvae_brats
# MONAI Label needs torchvision (monailabel -> monai[torchvision], sam2), and no torchvision release imports beside
# the CPU torch 2.13.0 wheel: its environment is a separate one, with a matched torch + torchvision pair (a CUDA
# build, which runs on a CPU; about 8 GB, 9 to 14 minutes to build on this project's 2-core machine). The tests find its
# `monailabel` at $(LABEL_VENV)/bin/monailabel, or where the environment variable DHVAE_MONAILABEL points.
LABEL_VENV ?= .venv-label
LABEL_TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

ifeq ($(PYTHON),$(VENV)/bin/python)
BOOTSTRAP := $(VENV)/.bootstrapped
endif

.PHONY: demo test label-env clean-venv

$(VENV)/.bootstrapped: setup.py
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install "$(TORCH_SPEC)"
	$(VENV)/bin/python -m pip install -e ".[test]"
	touch $@

$(LABEL_VENV)/.bootstrapped: setup.py
	python3 -m venv $(LABEL_VENV)
	$(LABEL_VENV)/bin/python -m pip install --upgrade pip
	$(LABEL_VENV)/bin/python -m pip install $(LABEL_TORCH_SPEC)
	$(LABEL_VENV)/bin/python -m pip install -e ".[label]"
	touch $@

label-env: $(LABEL_VENV)/.bootstrapped

demo: $(BOOTSTRAP)
	$(PYTHON) -m dhvae_monai.pipeline bundles/dhvae_brats --output_dir $(DEMO_DIR)

test: $(BOOTSTRAP)
	$(PYTHON) -m pytest tests

clean-venv:
	rm -rf $(VENV) $(LABEL_VENV)
