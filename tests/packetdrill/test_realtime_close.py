"""The real-time packetdrill stack gives its lab back however its close() is interrupted."""

import pytest

from rawtcp.packetdrill.rtstack import RealStack


class _Sock:
    def close(self) -> None:
        raise KeyboardInterrupt          # Ctrl-C while the kernel-side socket closes


class _Lab:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_an_interrupt_in_the_socket_close_still_closes_the_lab() -> None:
    """The lab's close ran after the socket's in the same block: a Ctrl-C in the socket's
    close skipped it, and the lab's namespaces stayed until the process exited (a helper's
    interrupted `packetdrill --realtime -j 2` runs)."""
    rt = object.__new__(RealStack)      # no lab is built: only close() is under test
    rt._stop = False
    rt.stack = None
    rt._sock = _Sock()
    rt.lab = _Lab()
    with pytest.raises(KeyboardInterrupt):
        rt.close()
    assert rt.lab.closed
