"""Persistent labs (`rawtcp lab up/down/list`): built, recorded, found, removed."""

import pytest

from rawtcp.host import registry
from rawtcp.host.netns import delete_netns, netns_exists
from rawtcp.lab.persistent import lab_down, lab_record, lab_records, lab_up, remove_all

pytestmark = pytest.mark.kernel


def test_lab_up_outlives_the_registry_and_lab_down_removes_it(tmp_path) -> None:
    labs = str(tmp_path / "labs")
    rec = lab_up(labs_dir=labs)
    try:
        assert netns_exists(rec.kernel_netns) and netns_exists(rec.rawtcp_netns)
        # the record owns the namespaces now, not the crash registry
        assert not [e for e in registry.entries()
                    if e.kind == "netns" and e.name in (rec.kernel_netns, rec.rawtcp_netns)]
        assert [r.name for r in lab_records(labs)] == [rec.name]
        assert lab_record(rec.name, labs) == rec and not rec.gone()
        assert rec.kernel_addr == rec.kernel_addrs[0] and rec.rawtcp_addrs
        with pytest.raises(LookupError, match=f"no lab named 'nope'.*labs: {rec.name}"):
            lab_record("nope", labs)
        assert lab_down(rec.name, labs) == rec
        assert not netns_exists(rec.kernel_netns) and not netns_exists(rec.rawtcp_netns)
        assert lab_records(labs) == []
    finally:
        for ns in (rec.rawtcp_netns, rec.kernel_netns):
            delete_netns(ns)


def test_a_lab_whose_namespaces_vanished_is_gone_and_remove_all_forgets_it(tmp_path) -> None:
    labs = str(tmp_path / "labs")
    rec = lab_up(labs_dir=labs)
    try:
        delete_netns(rec.kernel_netns)
        assert lab_record(rec.name, labs).gone()
        assert remove_all(labs) == [rec.name]
        assert lab_records(labs) == [] and not netns_exists(rec.rawtcp_netns)
    finally:
        for ns in (rec.rawtcp_netns, rec.kernel_netns):
            delete_netns(ns)


def test_no_labs_dir_means_no_labs(tmp_path) -> None:
    assert lab_records(str(tmp_path / "none")) == []
    with pytest.raises(LookupError, match="labs: none"):
        lab_record("x", str(tmp_path / "none"))
