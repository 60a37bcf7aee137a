import errno
import selectors

import pytest
from scapy.layers.inet import IP, TCP

from rawtcp.link.memory import MemoryLink


def syn(src: str, dst: str) -> bytes:
    return bytes(IP(src=src, dst=dst) / TCP(sport=1000, dport=80, flags="S"))


def test_pair_delivers_and_fileno_works_with_selectors() -> None:
    a, b = MemoryLink.pair("10.0.0.1", "10.0.0.2")
    with a, b, selectors.DefaultSelector() as sel:
        sel.register(b, selectors.EVENT_READ)
        assert sel.select(0) == []
        a.send(syn("10.0.0.1", "10.0.0.2"))
        assert len(sel.select(1)) == 1
        assert b.recv_batch() == [syn("10.0.0.1", "10.0.0.2")]
        assert b.recv_batch() == []
        assert sel.select(0) == []
        assert a.counters["tx_packets"] == 1 and b.counters["rx_packets"] == 1


def test_malformed_dropped_and_counted() -> None:
    a, b = MemoryLink.pair("10.0.0.1", "10.0.0.2")
    with a, b:
        bad = bytearray(syn("10.0.0.1", "10.0.0.2"))
        bad[2:4] = (9999).to_bytes(2, "big")   # total length beyond the bytes
        a.send(bytes(bad))
        assert b.recv_batch() == []
        assert b.counters["dropped_malformed"] == 1


def test_misuse_raises_oserror() -> None:
    a, b = MemoryLink.pair("10.0.0.1", "10.0.0.2", mtu=100)
    with pytest.raises(OSError) as e:
        a.send(bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP() / (b"x" * 200)))
    assert e.value.errno == errno.EMSGSIZE
    with pytest.raises(OSError) as e:
        a.send(b"hello")
    assert e.value.errno == errno.EINVAL
    a.close()
    with pytest.raises(OSError) as e:
        a.send(syn("10.0.0.1", "10.0.0.2"))
    assert e.value.errno == errno.EBADF
    b.close()


def test_queue_limit_counts_drops() -> None:
    a, b = MemoryLink.pair("10.0.0.1", "10.0.0.2", queue_limit=3)
    with a, b:
        for _ in range(5):
            a.send(syn("10.0.0.1", "10.0.0.2"))
        assert len(b.recv_batch()) == 3
        assert b.counters["dropped_queue_full"] == 2
