# The README's two commands: `make run` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The virtual environment is built on Debian's python3: a static, PGO+LTO build that ran pushcap
# with ~6% less CPU than a plain source build (pyenv's, shared libpython, no PGO), start-up and
# per-packet work alike (issue 7). Any other Python 3.11+ works: `make BASE_PYTHON=python3 ...`.
BASE_PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
DEBS := python3 python3-venv gcc libc6-dev libpcap-dev tcpdump wireshark-common redis-server iproute2 tcpreplay \
	time zstd lz4 chromium libfuse3-3
LUA ?= etc/push_realtime.lua
CONFIG ?= etc/pcapdaemon.toml
CSRC := $(wildcard pushcap/capture/csrc/*.c)

.PHONY: setup debs run test lint soak bench dist clean

# compileall: pushcap is installed editable, so its modules are compiled from source at every
# start unless their .pyc files exist, and PYTHONDONTWRITEBYTECODE=1 (this environment, some CI)
# stops Python from writing them; it still reads them. Only stale files are recompiled.
setup: debs $(VENV)/.installed
	$(PY) -m compileall -q pushcap

debs:
	@bash tools/install_debs.sh $(DEBS)

# The editable install builds the C library of the packet path (setup.py), as `pip install .`
# does: one build for every way of installing pushcap. A changed C file reinstalls.
$(VENV)/.installed: pyproject.toml setup.py $(CSRC) | debs
	test -x $(PY) || $(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(VENV)/bin/pushcap --version
	touch $@

run: setup
	$(VENV)/bin/pushcap run --lua $(LUA) --config $(CONFIG)

test: lint
	$(PY) -m pytest -q -ra

# Longer runs than `make test` has time for: the fuzz tests (tests/fuzz) with many more, random
# examples (PUSHCAP_FUZZ=soak; failures are kept in .hypothesis/ and tried first next time), and
# every test marked `soak`, which `make test` skips (PUSHCAP_SOAK=1). A long scenario joins by
# being marked `@pytest.mark.soak`; SOAK_ARGS adds pytest arguments (e.g. -x, -k lua). The
# reliability scenarios (marked `reliability`) run in `make test` too, longer here.
soak: setup
	PUSHCAP_FUZZ=soak PUSHCAP_SOAK=1 $(PY) -m pytest -q -ra -m "fuzz or soak or reliability" \
		--timeout=3600 \
		$(SOAK_ARGS) tests

# ruff, and the layers of DESIGN.md as import-linter contracts (pyproject.toml)
lint: setup
	$(VENV)/bin/ruff check pushcap tests tools
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) tools/bench.py

# An sdist and a wheel built from it in dist/ (the wheel holds the built C library; neither holds tests/data).
dist: setup
	rm -rf dist
	$(PY) -m build --outdir dist .

clean:
	rm -rf $(VENV) out .pytest_cache build dist *.egg-info pushcap/capture/_native*.so
