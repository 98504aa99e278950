# One command per task. `make test` and `make demo` work on a fresh machine with only Rust and
# CPython 3.11 (+ 3.12 or 3.13 for Django 6) present: they create the virtualenvs themselves.

SHELL := /bin/bash
PY311 ?= python3
# Django 6.x needs Python >= 3.12: the newest 3.13/3.12 under pyenv, else one on PATH that really runs
# (a pyenv shim for a version that is not active exits 127).
PY6 ?= $(shell for c in $$(ls -d $$HOME/.pyenv/versions/3.13.*/bin/python3 $$HOME/.pyenv/versions/3.12.*/bin/python3 2>/dev/null | sort -rV) python3.13 python3.12; do if $$c -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then echo $$c; break; fi; done)
VENV := .venv
VENV6 := .venv-django6
# The port `make demo-redis` serves on.
DEMO_PORT ?= 8000
DJANGO5 := Django>=5.2,<5.3
DJANGO6 := Django>=6.0,<7
# One interpreter of each CPython line a wheel is built for: the newest under pyenv, else one on PATH.
newest = $(shell for c in $$(ls -d $$HOME/.pyenv/versions/$(1).*/bin/python3 2>/dev/null | sort -rV) python$(1); do if $$c -c 'import sys; assert sys.version_info[:2] == ($(subst .,$(comma),$(1)))' 2>/dev/null; then echo $$c; break; fi; done)
comma := ,
PY312 ?= $(call newest,3.12)
PY313 ?= $(call newest,3.13)

.PHONY: help dev dev6 test test-rust test-py test-py6 test-install wheels wheel-abi3 abi3-cost lint format demo demo-shared demo-redis bench clean

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

test: test-rust test-py test-py6 test-install  ## everything CI runs

# Release artifacts. Wheels are linked with zig (the `ziglang` package from PyPI) against glibc 2.17, so
# they carry manylinux_2_17 (manylinux2014) and load on every glibc distribution from 2014 on; no container,
# no downloaded toolchain. Each interpreter builds in its own target dir, so a rebuild only relinks.
VENVW := .venv-wheels
MATURIN := PATH="$(CURDIR)/$(VENVW)/bin:$$PATH" $(VENVW)/bin/maturin
ZIG_BUILD := build --release --zig --compatibility manylinux2014 --locked
WHEEL_PYS := $(PY311) $(PY312) $(PY313)

$(VENVW)/.installed: Makefile
	$(PY311) -m venv $(VENVW)
	$(VENVW)/bin/pip install -q -U pip
	$(VENVW)/bin/pip install -q "maturin==1.16.0" "ziglang==0.17.1" "auditwheel==6.8.2" "twine==7.0.0" trove-classifiers
	touch $@

wheels: $(VENVW)/.installed  ## dist/: manylinux_2_17 x86_64 wheels for CPython 3.11/3.12/3.13 and an sdist, checked
	@tags="$$(for py in $(WHEEL_PYS); do $$py -c 'import sys; print("cp%d%d" % sys.version_info[:2])'; done | xargs)"; \
	test "$$tags" = "cp311 cp312 cp313" || { echo "wheels: need CPython 3.11, 3.12 and 3.13 (PY311/PY312/PY313); found: $$tags"; exit 1; }
	rm -rf dist
	for py in $(WHEEL_PYS); do \
		tag=$$($$py -c 'import sys; print("cp%d%d" % sys.version_info[:2])') && \
		$(MATURIN) $(ZIG_BUILD) -i $$py --out dist --target-dir target/wheels/$$tag || exit 1; \
	done
	$(MATURIN) sdist --out dist
	$(VENVW)/bin/python tests/install/check_dist.py dist cp311 cp312 cp313
	$(VENVW)/bin/twine check --strict dist/*

wheel-abi3: $(VENVW)/.installed  ## target/wheels/dist-abi3/: the abi3 wheel (cargo feature abi3), for abi3-cost
	rm -rf target/wheels/dist-abi3
	$(MATURIN) $(ZIG_BUILD) -i $(PY311) --features abi3 --out target/wheels/dist-abi3 --target-dir target/wheels/abi3

abi3-cost: wheels wheel-abi3  ## instructions per get hit and set, abi3 wheel vs per-version (callgrind; ~20 min)
	$(VENVW)/bin/python benchmarks/abi3_cost.py --wheels dist --abi3 target/wheels/dist-abi3 \
		--python $(PY311) "$(DJANGO5)" --python $(PY313) "$(DJANGO6)"

test-install: wheels  ## install each wheel (no Rust on PATH, no index) and the sdist in fresh venvs; smoke them
	$(PY311) tests/install/run.py wheels --dist dist \
		--python $(PY311) "$(DJANGO5)" --python $(PY312) "$(DJANGO6)" --python $(PY313) "$(DJANGO6)"
	$(PY311) tests/install/run.py sdist --dist dist --python $(PY311) "$(DJANGO5)"

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

demo-shared: dev  ## the demo on SharedCache, 4 gunicorn workers, http://127.0.0.1:8000/workers/
	$(VENV)/bin/pip install -q "gunicorn>=23"
	cd examples/demo && DJANGO_SETTINGS_MODULE=demo_site.shared_settings ../../$(VENV)/bin/gunicorn \
		--workers 4 --bind 127.0.0.1:8000 --access-logfile - demo_site.wsgi:application

demo-redis: dev  ## the demo on RedisNearCache: redis-server on loopback, 4 gunicorn workers on http://127.0.0.1:8000/
	$(VENV)/bin/pip install -q "gunicorn>=23"
	@# The server is stopped by its pid on every way out (Ctrl-C, kill, gunicorn failing): the trap is set
	@# before it starts, and names the script by its absolute path (the recipe cd's into the demo).
	@redis="$(CURDIR)/benchmarks/redis_server.sh"; \
	  trap '"$$redis" stop demo' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM HUP; \
	  port=$$("$$redis" start demo) || exit 1; \
	  echo "redis-server on 127.0.0.1:$$port; workers page: http://127.0.0.1:$(DEMO_PORT)/near-workers/"; \
	  cd examples/demo && DEMO_REDIS_URL=redis://127.0.0.1:$$port/0 DJANGO_SETTINGS_MODULE=demo_site.settings_redis \
	  ../../$(VENV)/bin/gunicorn -w 4 -b 127.0.0.1:$(DEMO_PORT) demo_site.wsgi:application

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
	$(VENVB)/bin/python benchmarks/near_bench.py $(BENCH_ARGS)

.PHONY: hit-ratio
hit-ratio: dev  ## hit ratios through the backend vs exact LRU and OPT, ~15 min (HIT_RATIO_ARGS=--quick: ~4 min)
	HIT_RATIO_VIA="make hit-ratio$(if $(HIT_RATIO_ARGS), HIT_RATIO_ARGS=\"$(HIT_RATIO_ARGS)\")" $(VENV)/bin/python benchmarks/hit_ratio.py $(HIT_RATIO_ARGS)

clean:  ## remove build products and virtualenvs
	rm -rf target dist $(VENV) $(VENV6) $(VENVW) python/django_rustcache/*.so
