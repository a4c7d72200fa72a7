# `make demo` and `make test` set up .venv from scratch (torch 2.15 + torchvision from PyPI, CPU-capable).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
export FEWSHOT_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export PYTHONUNBUFFERED = 1

.PHONY: install demo test test-py test-nbs bench clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,pretrained,deploy]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/fewshot-fastai demo --out out/demo

test-py: install
	$(PY) -m pytest -q tests

test-nbs: install
	cd nbs && FEWSHOT_FAST=1 ../$(VENV)/bin/nbdev-test --n-workers 1 --timing .

test: test-py test-nbs

bench: install
	$(PY) bench/siamese_verification.py

clean:
	rm -rf $(VENV) out *.egg-info
