"""Shared fixtures: Lua target files, generated traces, a loopback UDP port, and the path to the
real captures."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import repo_paths  # noqa: E402

# Every file this test process opens is checked: one that lies beside the repository (a sibling
# `shared/` folder, which a user's clone does not have) fails the test that opened it
# (tests/repo_paths.py).
OUTSIDE_READS = repo_paths.watch(REPO)


def pytest_collection_modifyitems(config, items):
    """Tests marked `soak` (long reliability runs) run only under `make soak` (PUSHCAP_SOAK=1)."""
    if os.environ.get("PUSHCAP_SOAK") == "1":
        return
    skip = pytest.mark.skip(reason="a soak test: `make soak` runs it (PUSHCAP_SOAK=1)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _reads_stay_in_the_repository():
    OUTSIDE_READS.found.clear()
    yield
    assert not OUTSIDE_READS.found, (
        f"this test opened files beside the repository, which a plain clone lacks (keep test "
        f"data in tests/data): {sorted(OUTSIDE_READS.found)}")


def lua_targets(targets: list[dict]) -> str:
    """push_realtime.lua text in the FMADIO layout for the given target tables."""
    lines = ["local Config = {}", "Config.Target = {}"]
    for target in targets:
        fields = []
        for key, value in target.items():
            fields.append(f"    {key} = {'nil' if value is None else repr_lua(value)},")
        lines.append("table.insert(Config.Target, {\n" + "\n".join(fields) + "\n})")
    lines.append("return Config")
    return "\n".join(lines) + "\n"


def repr_lua(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


@pytest.fixture
def write_lua(tmp_path):
    def write(targets: list[dict], name: str = "push_realtime.lua") -> Path:
        path = tmp_path / name
        path.write_text(lua_targets(targets))
        return path

    return write


@pytest.fixture(scope="session")
def gen_trace(tmp_path_factory):
    """Make (and cache per session) a trace from tools/gen_trace.py."""
    import gen_trace as generator

    cache: dict[tuple, Path] = {}

    def make(packets: int, seed: int = 1, nano: bool = False, rate_pps: float = 20000.0) -> Path:
        key = (packets, seed, nano, rate_pps)
        if key not in cache:
            path = tmp_path_factory.mktemp("traces") / f"trace_{packets}_{seed}_{int(nano)}.pcap"
            generator.generate(path, packets, seed=seed, nano=nano, rate_pps=rate_pps)
            cache[key] = path
        return cache[key]

    return make


@pytest.fixture
def udp_port():
    """A UDP port on loopback that nothing else takes while the test runs (the socket holding
    it stays bound and never reads): traffic sent there is only seen by a capture."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()
