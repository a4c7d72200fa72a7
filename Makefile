# `make demo` and `make test` set up .venv from scratch (torch + torchvision from PyPI, CPU-capable), with uv:
# parallel downloads and installs, and the bytecode compiled at install (this machine sets PYTHONDONTWRITEBYTECODE,
# so modules not compiled then would be compiled again by every process that imports them).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
export FEWSHOT_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export PYTHONUNBUFFERED = 1

.PHONY: install demo test test-py test-nbs docs docs-check chromium bench clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -e '.[dev,pretrained,deploy,docs,faces,serve]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/fewshot-fastai demo --out out/demo --force

# two workers on the 2 cores, one file per worker at a time (its module fixtures built once); one torch thread each (conftest)
test-py:
	$(MAKE) -j2 install chromium   # the two at once: apt unpacks chromium while uv downloads
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15 tests

# two notebooks at a time on the 2 cores, one torch thread each
test-nbs: install
	cd nbs && FEWSHOT_FAST=1 OMP_NUM_THREADS=1 ../$(VENV)/bin/nbdev-test --n-workers 2 --timing .

# the documentation site: built from nbs/ without Quarto into _docs/ (open _docs/index.html), then checked:
# links and anchors, every public name in the API reference, and three pages + search in headless chromium
docs: install
	$(PY) docs/build.py

docs-check: docs chromium
	$(PY) docs/check.py

# Debian's chromium for the real-browser checks (Playwright drives it; no browser download)
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: test-py test-nbs docs-check

bench: install
	$(PY) bench/siamese_verification.py

clean:
	rm -rf $(VENV) out *.egg-info _docs _proc _build
