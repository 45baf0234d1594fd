# The README's two commands: `make run` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The virtual environment is built on Debian's python3: a static, PGO+LTO build that ran pushcap
# with ~6% less CPU than a plain source build (pyenv's, shared libpython, no PGO), start-up and
# per-packet work alike (issue 7). Any other Python 3.11+ works: `make BASE_PYTHON=python3 ...`.
BASE_PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
DEBS := python3 python3-venv gcc libc6-dev libpcap-dev tcpdump wireshark-common redis-server iproute2 tcpreplay \
	time zstd lz4
LUA ?= etc/push_realtime.lua
CONFIG ?= etc/pcapdaemon.toml
NATIVE := pushcap/capture/_native.so

.PHONY: setup debs run test lint bench clean

# compileall: pushcap is installed editable, so its modules are compiled from source at every
# start unless their .pyc files exist, and PYTHONDONTWRITEBYTECODE=1 (this environment, some CI)
# stops Python from writing them; it still reads them. Only stale files are recompiled.
setup: debs $(VENV)/.installed $(NATIVE)
	$(PY) -m compileall -q pushcap

# The pcap record walk in C (pushcap/capture/native.py loads it with ctypes; without it the numpy
# walk serves): issue 7, about 0.1 s of CPU less per million replayed packets.
$(NATIVE): pushcap/capture/csrc/*.c | debs
	$(CC) -O2 -Wall -Wextra -Werror -shared -fPIC -o $@ $^ -lpcap

debs:
	@bash tools/install_debs.sh $(DEBS)

$(VENV)/.installed: pyproject.toml | debs
	$(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: setup
	$(VENV)/bin/pushcap run --lua $(LUA) --config $(CONFIG)

test: setup
	$(VENV)/bin/ruff check pushcap tests tools
	$(PY) -m pytest -q -ra

lint: setup
	$(VENV)/bin/ruff check pushcap tests tools

bench: setup
	$(PY) tools/bench.py

clean:
	rm -rf $(VENV) out .pytest_cache $(NATIVE)
