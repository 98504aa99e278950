# One command per task. `make test` and `make demo` work on a fresh machine with only Rust and
# CPython 3.11 (+ 3.12 or 3.13 for Django 6) present: they create the virtualenvs themselves.

SHELL := /bin/bash
PY311 ?= python3
# Django 6.x needs Python >= 3.12: the newest 3.13/3.12 under pyenv, else one on PATH that really runs
# (a pyenv shim for a version that is not active exits 127).
PY6 ?= $(shell for c in $$(ls -d $$HOME/.pyenv/versions/3.13.*/bin/python3 $$HOME/.pyenv/versions/3.12.*/bin/python3 2>/dev/null | sort -rV) python3.13 python3.12; do if $$c -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then echo $$c; break; fi; done)
VENV := .venv
VENV6 := .venv-django6
DJANGO5 := Django>=5.2,<5.3
DJANGO6 := Django>=6.0,<7

.PHONY: help dev dev6 test test-rust test-py test-py6 lint format demo bench clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml Cargo.toml
	$(PY311) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q "$(DJANGO5)" maturin
	$(VENV)/bin/pip install -q --group dev
	touch $@

$(VENV6)/.installed: pyproject.toml Cargo.toml
	@if [ -z "$(PY6)" ]; then echo "No Python 3.12/3.13 found for Django 6 (set PY6=...)"; exit 1; fi
	$(PY6) -m venv $(VENV6)
	$(VENV6)/bin/pip install -q -U pip
	$(VENV6)/bin/pip install -q "$(DJANGO6)" maturin
	$(VENV6)/bin/pip install -q --group test
	touch $@

dev: $(VENV)/.installed  ## venv (Python 3.11, Django 5.2) with the package built in place
	$(VENV)/bin/pip install -q -e .

dev6: $(VENV6)/.installed  ## venv (Python 3.12+, Django 6) with the package built in place
	$(VENV6)/bin/pip install -q -e .

test-rust:  ## the pure-Rust core, alone
	cargo test --lib

test-py: dev  ## pytest on Python 3.11 + Django 5.2 (includes Django's own cache suite)
	$(VENV)/bin/python -m pytest -q

test-py6: dev6  ## pytest on Python 3.12+ + Django 6
	$(VENV6)/bin/python -m pytest -q

test: test-rust test-py test-py6  ## everything CI runs

lint: dev  ## formatters and linters, checking only
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests benchmarks examples
	$(VENV)/bin/ruff format --check python tests benchmarks examples
	$(VENV)/bin/python -m mypy.stubtest django_rustcache._core

format:  ## rewrite code in house style
	cargo fmt --all
	$(VENV)/bin/ruff format python tests benchmarks examples
	$(VENV)/bin/ruff check --fix python tests benchmarks examples

demo: dev  ## the demo site on http://127.0.0.1:8000/ (in-process store)
	cd examples/demo && ../../$(VENV)/bin/python manage.py runserver 127.0.0.1:8000

VENVB := .venv-bench

$(VENVB)/.installed: pyproject.toml
	$(PY311) -m venv $(VENVB)
	$(VENVB)/bin/pip install -q -U pip
	$(VENVB)/bin/pip install -q "$(DJANGO5)"
	$(VENVB)/bin/pip install -q --group bench
	touch $@

bench: $(VENVB)/.installed  ## benchmark suite on a release build (BENCH_ARGS="--quick" for ~1 min)
	$(VENVB)/bin/pip install -q --no-deps --force-reinstall .
	BENCH_VIA="make bench$(if $(BENCH_ARGS), BENCH_ARGS=\"$(BENCH_ARGS)\")" $(VENVB)/bin/python benchmarks/bench.py $(BENCH_ARGS)

.PHONY: hit-ratio
hit-ratio: dev  ## hit ratios through the backend vs exact LRU and OPT, ~15 min (HIT_RATIO_ARGS=--quick: ~4 min)
	HIT_RATIO_VIA="make hit-ratio$(if $(HIT_RATIO_ARGS), HIT_RATIO_ARGS=\"$(HIT_RATIO_ARGS)\")" $(VENV)/bin/python benchmarks/hit_ratio.py $(HIT_RATIO_ARGS)

clean:  ## remove build products and virtualenvs
	rm -rf target $(VENV) $(VENV6) python/django_rustcache/*.so
