"""A Ctrl-C or SIGTERM that lands inside a removal (a namespace, an nftables table) does not
leave it half done: the removal finishes, its registry entry goes, then the interrupt is
raised."""

import pytest

from rawtcp.host import netns, nft, registry


@pytest.fixture
def reg_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY_DIR", str(tmp_path))
    return tmp_path


def test_delete_table_finishes_when_interrupted(reg_dir, monkeypatch):
    name = "rt_rawip_1_abcdef"
    registry.register("nft", name, "rtns", "inet")
    calls = []

    def fake_nft(args, ns, input=None, check=True):
        calls.append((args, ns))
        if len(calls) == 1:
            raise KeyboardInterrupt    # Ctrl-C while `nft delete table` runs
        return ""

    monkeypatch.setattr(nft, "nft", fake_nft)
    with pytest.raises(KeyboardInterrupt):
        nft.delete_table("rtns", "inet", name)
    assert calls[-1] == (["delete", "table", "inet", name], "rtns")
    assert len(calls) == 2
    assert registry.entries() == []


def test_delete_netns_finishes_when_interrupted(reg_dir, monkeypatch):
    name = "rt0000011234k"
    registry.register("netns", name)
    state = {"exists": True, "runs": 0}

    def fake_run(cmd, input=None, check=True, timeout=10.0):
        state["runs"] += 1
        if state["runs"] == 1:
            raise SystemExit(143)      # SIGTERM while `ip netns del` runs
        assert cmd == ["ip", "netns", "del", name]
        state["exists"] = False

    monkeypatch.setattr(netns, "run", fake_run)
    monkeypatch.setattr(netns, "netns_pids", lambda n: [])
    monkeypatch.setattr(netns, "netns_exists", lambda n: state["exists"])
    with pytest.raises(SystemExit):
        netns.delete_netns(name)
    assert state["exists"] is False
    assert registry.entries() == []


def test_an_error_of_the_removal_itself_is_raised(reg_dir, monkeypatch):
    def fake_nft(args, ns, input=None, check=True):
        raise OSError(5, "nft is broken")

    monkeypatch.setattr(nft, "nft", fake_nft)
    with pytest.raises(OSError, match="nft is broken"):
        nft.delete_table(None, "inet", "rt_x_1_abcdef")
