"""Decap (FMADIO's, on by default): a target's filter sees each packet with its encapsulation
taken off, and the C walk and the numpy one agree packet for packet.

The oracle is tcpdump on the inner frames: tests/encap_packets.py builds every packet from its
inner frame with struct (so the inner frame is known without pushcap's walk), tcpdump filters a
pcap of the inner frames, and the indices it keeps must be those pushcap's decapsulating filter
selects from the outer packets.
"""

from __future__ import annotations

import numpy as np
import pytest
from bpf_helpers import _as_batch, _random_packets
from encap_packets import ENCAPSULATIONS, encapsulated, write_pcap
from oracle import tcpdump_select

from pushcap.capture import bpf as bpf_module
from pushcap.capture import decap as decap_module
from pushcap.capture import decap_numpy
from pushcap.capture.bpf import BpfFilter, compile_target_filter
from pushcap.capture.decap import DecapFilter
from pushcap.capture.native_decap import native_decap
from pushcap.config.lua import load_targets_text

FILTERS = [
    "tcp", "udp port 53", "host 10.0.0.1", "ip6", "arp", "icmp", "vlan", "mpls",
    "ether host 0a:00:00:00:00:01", "ether host 02:00:00:00:00:02", "tcp port 80 and host 10.0.0.2",
    "greater 200", "ip[8] = 64", "not tcp", "proto gre", "udp port 4789",
]  # fmt: skip
BASE_NS = 1_700_000_000 * 10**9


@pytest.fixture(scope="module")
def nd():
    found = native_decap()
    if found is None:
        pytest.skip("the C library is not built")
    return found


def tcpdump_indices(tmp_path, frames: list[bytes], bpf: str) -> list[int]:
    path = tmp_path / "inner.pcap"
    write_pcap(path, frames)
    kept = tcpdump_select(path, bpf, tmp_path / "sel.pcap").packets
    return [(p[0] - BASE_NS) // 1000 for p in kept]


def numpy_select(decap_filter: DecapFilter, batch) -> list[int]:
    return np.flatnonzero(decap_filter.match(batch)).tolist()


@pytest.mark.parametrize("name", sorted(ENCAPSULATIONS))
def test_the_filter_sees_the_inner_frame_as_tcpdump_does(name, tmp_path, monkeypatch):
    outer, inner = encapsulated(name, seed=len(name))
    batch = _as_batch(outer)
    for bpf in FILTERS:
        expected = tcpdump_indices(tmp_path, inner, bpf)
        decap_filter = DecapFilter(BpfFilter(bpf, 1))
        assert list(decap_filter.select(batch)) == expected, (name, bpf)
        assert numpy_select(decap_filter, batch) == expected, (name, bpf)
    monkeypatch.setattr(decap_module, "native_decap", lambda: None)  # the numpy path whole
    assert list(DecapFilter(BpfFilter("tcp", 1)).select(batch)) == \
        tcpdump_indices(tmp_path, inner, "tcp")


@pytest.mark.parametrize("name", sorted(ENCAPSULATIONS))
def test_c_builds_the_inner_frames_the_encapsulation_carries(name, nd):
    outer, inner = encapsulated(name, seed=3, n=200)
    batch = _as_batch(outer)
    offsets, _, caplen, wirelen = batch.columns
    idx, info, need = nd.scan(batch.records, offsets, caplen)
    records, at, size, wire = nd.build(batch.records, offsets, caplen, wirelen, idx, info, need)
    built = {i: bytes(records[o + 16:o + 16 + c]) for i, o, c in zip(idx, at, size, strict=True)}
    assert [built.get(i, outer[i]) for i in range(len(outer))] == inner
    assert list(wire) == [len(inner[i]) for i in idx]  # the wire less what came off
    assert set(idx) == {i for i in range(len(outer)) if outer[i] != inner[i]}


def damaged(seed: int, n: int = 3000) -> list[bytes]:
    """Encapsulated packets cut short at any byte and with random bytes flipped, and random
    Ethernet-ish packets: every walk must stop where its header ends, identically."""
    rng = np.random.default_rng(seed)
    packets = _random_packets(rng, n // 3)
    for name in ENCAPSULATIONS:
        outer, _ = encapsulated(name, seed=seed, n=n // 2 // len(ENCAPSULATIONS))
        for packet in outer:
            packet = bytearray(packet)
            for _ in range(int(rng.integers(0, 3))):
                packet[int(rng.integers(len(packet)))] = int(rng.integers(256))
            packets.append(bytes(packet[:int(rng.integers(0, len(packet) + 1))]))
    order = rng.permutation(len(packets))
    return [packets[i] for i in order]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_c_and_numpy_walks_agree_on_damaged_packets(seed, nd):
    packets = damaged(seed)
    wirelen = [len(p) + (i % 7) * 13 for i, p in enumerate(packets)]  # some cut by a snaplen
    batch = _as_batch(packets, wirelen)
    offsets, _, caplen, wire_column = batch.columns
    idx, info, need = nd.scan(batch.records, offsets, caplen)
    data = np.frombuffer(batch.records, dtype=np.uint8)
    np_idx, np_info = decap_numpy.scan(data, batch.offsets, batch.caplen)
    assert list(idx) == np_idx.tolist()
    assert list(info) == np_info.tolist()
    assert len(idx) > len(packets) // 4  # the damage left many walks to take
    records, at, size, wire = nd.build(batch.records, offsets, caplen, wire_column, idx, info,
                                       need)
    buf, np_at, np_size, np_wire = decap_numpy.inner_frames(
        data, batch.offsets, batch.caplen, batch.wirelen, np_idx, np_info)
    assert [bytes(records[o + 16:o + 16 + c]) for o, c in zip(at, size, strict=True)] == \
        [buf[o:o + c].tobytes() for o, c in zip(np_at, np_size, strict=True)]
    assert list(wire) == np_wire.tolist()
    for bpf in ("tcp", "vlan or udp", "ip6 and tcp", "greater 100", "ether[12:2] = 0x0800"):
        decap_filter = DecapFilter(BpfFilter(bpf, 1))
        assert list(decap_filter.select(batch)) == numpy_select(decap_filter, batch), bpf


def test_merge_keeps_the_outer_verdict_only_for_packets_without_a_layer(nd):
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(0, 60))
        idx = sorted(rng.choice(n, int(rng.integers(0, n + 1)), replace=False).tolist()) if n \
            else []
        outer = sorted(rng.choice(n, int(rng.integers(0, n + 1)), replace=False).tolist()) if n \
            else []
        inner = sorted(rng.choice(len(idx), int(rng.integers(0, len(idx) + 1)),
                                  replace=False).tolist()) if idx else []
        expected = sorted({i for i in outer if i not in idx} | {idx[k] for k in inner})
        as_q = [memoryview(np.array(x, dtype=np.int64)) for x in (outer, idx, inner)]
        assert list(nd.merge(*as_q)) == expected


def test_a_batch_without_encapsulation_is_filtered_as_it_is():
    outer, inner = encapsulated("vlan", seed=9, plain_every=1)  # every packet plain
    assert outer == inner
    batch = _as_batch(outer)
    assert list(DecapFilter(BpfFilter("tcp", 1)).select(batch)) == \
        list(BpfFilter("tcp", 1).select(batch))


def _target(decap: str, bpf: str = "tcp"):
    text = (f'return {{ Decap = {decap}, Target = {{ {{ Desc = "t", Mode = "File", '
            f'Path = "out/t", FilterBPF = "{bpf}" }} }} }}')
    return load_targets_text(text.replace("Decap = None, ", ""), "push.lua")[0]


def test_decap_is_on_by_default_and_follows_config_decap():
    assert _target("None").decap is True  # FMADIO's documented default
    assert _target("false").decap is False
    assert isinstance(compile_target_filter(_target("None"), 1, 262144), DecapFilter)
    assert isinstance(compile_target_filter(_target("false"), 1, 262144), BpfFilter)
    text = ('return { Decap = false, Target = { { Desc = "t", Mode = "File", Path = "out/t", '
            'FilterBPF = "tcp", Decap = true } } }')
    assert load_targets_text(text, "push.lua")[0].decap is True  # the target's own wins


def test_decap_applies_to_ethernet_only():
    target = _target("true")
    assert isinstance(compile_target_filter(target, 113, 262144), bpf_module.BpfFilter)
    assert isinstance(compile_target_filter(target, 101, 262144), bpf_module.BpfFilter)


@pytest.mark.parametrize("seed", [4, 5])
def test_copying_only_what_the_filter_reads_changes_no_verdict(seed, monkeypatch):
    """An inner frame is copied only as far as the filter can load (bpf_program.load_bound):
    the same answers as with whole frames, for filters that read deep, use X or the length."""
    from test_bpf import FILTERS as BPF_FILTERS

    batch = _as_batch(damaged(seed, 1500))
    for bpf in [*FILTERS, *BPF_FILTERS[:40]]:
        try:
            compiled = BpfFilter(bpf, 1)
        except bpf_module.BpfError:
            continue
        cut = DecapFilter(compiled)
        whole = DecapFilter(compiled)
        whole.limit = None
        assert list(cut.select(batch)) == list(whole.select(batch)), bpf
        assert numpy_select(cut, batch) == numpy_select(whole, batch), bpf
