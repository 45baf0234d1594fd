"""What filter_keys reads from a BPF expression: libpcap's precedence (`and` and `or` equal, left
to right), its carried-over qualifiers, and "every flow" (None) wherever it cannot be sure, so
the index never hides a packet the filter accepts (the query tests hold the results to tcpdump).
"""

from __future__ import annotations

import ipaddress

import pytest

from pushcap.archive.filter_keys import Leaf, Node, analyse


def host(text: str) -> Leaf:
    address = ipaddress.ip_address(text)
    return Leaf("net", ipaddress.ip_network(address), address.version, address.version == 4)


def test_hosts_ports_protocols():
    assert analyse("host 10.0.0.1") == host("10.0.0.1")
    assert analyse("10.0.0.1") == host("10.0.0.1")
    assert analyse("ip src 10.0.0.1") == Leaf("net", ipaddress.ip_network("10.0.0.1/32"), 4,
                                              False)
    assert analyse("host 2001:db8::1") == host("2001:db8::1")
    assert analyse("tcp port 80") == Leaf("port", 80, 80, 6)
    assert analyse("portrange 1000-2000") == Leaf("port", 1000, 2000, None)
    assert analyse("src or dst port 53") == Leaf("port", 53, 53, None)
    assert analyse("udp") == Leaf("proto", 17, None)
    assert analyse("icmp6") == Leaf("proto", 58, 6)
    assert analyse("ip proto \\tcp") == Leaf("proto", 6, 4)
    assert analyse("net 10") == Leaf("net", ipaddress.ip_network("10.0.0.0/8"), 4, True)
    assert analyse("ip net 10.1.0.0 mask 255.255.0.0") == Leaf(
        "net", ipaddress.ip_network("10.1.0.0/16"), 4, False)  # `ip`: no ARP addresses
    assert analyse("arp") == Leaf("ethertype", 0x0806)


def test_equal_precedence_left_to_right_and_carried_qualifiers():
    # libpcap: (host A or port 80) and udp, not host A or (port 80 and udp)
    assert analyse("host 1.2.3.4 or port 80 and udp") == Node("and", (
        Node("or", (host("1.2.3.4"), Leaf("port", 80, 80, None))), Leaf("proto", 17, None)))
    assert analyse("tcp port 80 or 443") == Node("or", (Leaf("port", 80, 80, 6),
                                                        Leaf("port", 443, 443, 6)))
    assert analyse("host 1.1.1.1 and not 2.2.2.2") == host("1.1.1.1")  # not: every flow


@pytest.mark.parametrize("expression", [
    None, "", "not port 22", "vlan 10 or host 1.2.3.4", "mpls and host 1.2.3.4",
    "tcp[13] & 2 != 0", "arp host 1.2.3.4 or udp", "ether host 00:11:22:33:44:55 or udp",
    "TCP", "host name.example", "(host 1.2.3.4) or 5.6.7.8", "greater 100 or tcp",
    "ip6 protochain 6", "port http", "not vlan and host 1.2.3.4",
])
def test_unsure_means_every_flow(expression):
    assert analyse(expression) is None


def test_vlan_only_as_a_term_of_the_top_level_and():
    assert analyse("vlan 10 and host 1.2.3.4") == Node("and", (Leaf("vlan", 10),
                                                              host("1.2.3.4")))
    assert analyse("host 1.2.3.4 and (vlan or udp)") is None
