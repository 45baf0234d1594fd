"""`pushcap replay` with Decap (FMADIO's default): each target's files hold, byte for byte as
captured, exactly the packets whose inner frame tcpdump selects with the target's filter; with
`Decap = false`, exactly what tcpdump selects from the packets as captured.

tests/encap_packets.py builds every packet from its inner frame (VLAN, QinQ, MPLS, GRE, ERSPAN
II and III, VXLAN, Geneve, IP in IP, nested), so the inner pcap is made without pushcap, and
tcpdump on it is the oracle. The C path and the numpy path (PUSHCAP_NO_NATIVE=1) must write the
same files.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from encap_packets import ENCAPSULATIONS, encapsulated, write_pcap
from oracle import read_pcap, tcpdump_select

pytestmark = pytest.mark.integration

FILTERS = ["tcp", "udp port 53", "host 10.0.0.1 and not icmp", "ip6 or arp",
           "ether host 0a:00:00:00:00:01", "greater 150", "vlan"]
BASE_NS = 1_700_000_000 * 10**9


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    """(outer pcap, inner pcap, outer packets): every encapsulation, mixed with plain frames."""
    folder = tmp_path_factory.mktemp("decap")
    outer, inner = [], []
    for seed, name in enumerate(sorted(ENCAPSULATIONS)):
        o, i = encapsulated(name, seed=seed, n=60)
        outer += o
        inner += i
    write_pcap(folder / "outer.pcap", outer)
    write_pcap(folder / "inner.pcap", inner)
    return folder / "outer.pcap", folder / "inner.pcap", outer


def lua(out, decap: bool | None) -> str:
    setting = "" if decap is None else f"Decap = {str(decap).lower()}, "
    targets = ",\n".join(
        f'  {{ Desc = "t{i}", Mode = "File", Path = "{out}/t{i}", Split = "--split-byte 1e6", '
        f'FileName = "--filename-epoch-nsec", FilterBPF = "{bpf}", {setting}}}'
        for i, bpf in enumerate(FILTERS))
    return f"return {{ Target = {{\n{targets}\n}} }}\n"


def replay(tmp_path, trace, decap: bool | None, native: bool = True) -> dict[int, list]:
    out = tmp_path / ("native" if native else "numpy") / str(decap)
    config = out / "push.lua"
    out.mkdir(parents=True)
    config.write_text(lua(out, decap))
    env = {**os.environ, "PUSHCAP_NO_NATIVE": "" if native else "1"}
    proc = subprocess.run([sys.executable, "-m", "pushcap.cli", "replay", str(trace), "--lua",
                           str(config)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return {i: [p for f in sorted(out.glob(f"t{i}_*.pcap")) for p in read_pcap(f).packets]
            for i in range(len(FILTERS))}


@pytest.mark.parametrize("native", [True, False], ids=["C", "numpy"])
def test_the_files_hold_the_captured_packets_whose_inner_frame_matches(traces, tmp_path,
                                                                       native):
    outer_pcap, inner_pcap, outer = traces
    got = replay(tmp_path, outer_pcap, None, native)  # Decap not written: on, FMADIO's default
    for i, bpf in enumerate(FILTERS):
        kept = tcpdump_select(inner_pcap, bpf, tmp_path / "sel.pcap").packets
        indices = [(p[0] - BASE_NS) // 1000 for p in kept]
        assert [p[3] for p in got[i]] == [outer[k] for k in indices], bpf
        assert [p[2] for p in got[i]] == [len(outer[k]) for k in indices]  # wire length as captured
    assert got[FILTERS.index("vlan")] == []  # the tags came off before the filter
    assert len(got[0]) > len(FILTERS)  # tunnelled TCP was found


def test_decap_false_filters_the_packets_as_captured(traces, tmp_path):
    outer_pcap, _, _ = traces
    got = replay(tmp_path, outer_pcap, False)
    for i, bpf in enumerate(FILTERS):
        assert got[i] == tcpdump_select(outer_pcap, bpf, tmp_path / "sel.pcap").packets, bpf


def test_c_and_numpy_write_the_same_files(traces, tmp_path):
    outer_pcap, _, _ = traces
    assert replay(tmp_path, outer_pcap, True, native=True) == \
        replay(tmp_path, outer_pcap, True, native=False)
