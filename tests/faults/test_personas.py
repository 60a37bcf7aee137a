"""Personas: presets made only of fault rules; the table, the CLI (``--persona``,
``rawtcp persona list``) and what some of them do in the simulator (stack a plays the
persona, b is an honest core stack)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import pytest

from rawtcp.core.config import SEC, Config
from rawtcp.faults import RuleError, parse_action_rule
from rawtcp.faults.personas import PERSONAS, persona_rules, persona_texts
from rawtcp.sim import Sim, transfer

NAMES = ["never-fin", "no-final-ack", "zero-window-forever", "shrinking-window",
         "slow-reader", "ack-withholder", "rst-storm", "half-open", "syn-flooder"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True,
                          text=True, timeout=60)


def test_the_table_has_every_persona_made_of_rules() -> None:
    assert list(PERSONAS) == NAMES
    for p in PERSONAS.values():
        assert p.rules and all(isinstance(t, str) for t in p.rules)
        for text in p.rules:
            r = parse_action_rule(text)
            assert parse_action_rule(str(r)) == r       # plain rule text, round trip
        assert persona_texts([p.name]) == list(p.rules)
        assert all(t in p.explain() for t in p.rules)


def test_several_personas_add_up_in_order() -> None:
    rules = persona_rules(["slow-reader", "rst-storm"])
    assert [str(r) for r in rules] == [str(parse_action_rule(t)) for t in
                                       (*PERSONAS["slow-reader"].rules,
                                        *PERSONAS["rst-storm"].rules)]


def test_unknown_persona_is_one_line() -> None:
    with pytest.raises(RuleError) as ei:
        persona_texts(["polite"])
    assert str(ei.value).startswith("unknown persona 'polite' (known: never-fin,")


def test_persona_list_explains_each() -> None:
    p = cli("persona", "list")
    assert p.returncode == 0, p.stderr
    for name in PERSONAS:
        assert f"\n{name}: {PERSONAS[name].title}\n" in "\n" + p.stdout
        assert f"rawtcp experiment run persona-{name}" in p.stdout
    assert "Expected of the kernel" in p.stdout
    js = cli("persona", "list", "--json")
    rows = json.loads(js.stdout)
    assert [r["persona"] for r in rows] == NAMES
    assert rows[0]["rules"] == list(PERSONAS["never-fin"].rules)


@pytest.mark.parametrize("args,message", [
    (["persona"], "rawtcp persona: give an action: list"),
    (["connect", "10.9.9.9", "7", "--persona", "polite"], "unknown persona 'polite'"),
    (["connect", "10.9.9.9", "7", "--mangle", "in set win=70000"],
     "win must be within 0..65535, got 70000"),
    (["connect", "10.9.9.9", "7", "--inject", "on=NOPE send RST"], "unknown state 'NOPE'"),
    (["experiment", "run", "lifecycle", "--inject", "in send RST seq=x"], "unknown value 'x'"),
])
def test_bad_arguments_exit_2_with_one_line(args: list[str], message: str) -> None:
    p = cli(*args)
    assert p.returncode == 2
    assert message in p.stderr and p.stderr.count("\n") == 1


# ------------------------------------------------------------------------------ simulator
def test_sim_never_fin_peer_never_sees_eof() -> None:
    evs: list[dict] = []
    sim = Sim(seed=1, faults=persona_texts(["never-fin"]), tracer=evs.append)
    res = transfer(sim, 5000, max_time_us=20 * SEC)
    assert res.server is not None and not res.server.eof
    assert res.recv_ab == res.sent_ab                    # the data itself went through
    stripped = [e for e in evs if e.get("ev") == "fault" and e["action"] == "mangle"]
    assert stripped and all("F" in e["flags_was"] and "F" not in e["flags"]
                            for e in stripped)


def test_sim_zero_window_forever_peer_only_probes() -> None:
    """RFC 9293 3.8.6.1: b may send nothing but window probes into a's zero window."""
    evs: list[dict] = []
    sim = Sim(seed=2, faults=persona_texts(["zero-window-forever"]), tracer=evs.append)
    res = transfer(sim, 50_000, max_time_us=20 * SEC)
    assert not res.ok and len(res.recv_ba) <= 1
    probes = [e for e in evs if e.get("stack") == "b" and e.get("ev") == "timer"
              and e.get("name") == "persist" and e.get("action") == "fired"]
    assert len(probes) >= 3


def test_sim_rst_storm_is_survived_with_challenge_acks() -> None:
    """RFC 5961 3.2: none of the 20 in-window RSTs is exact, b survives them all."""
    evs: list[dict] = []
    sim = Sim(seed=3, faults=persona_texts(["rst-storm"]), tracer=evs.append)
    res = transfer(sim, 200_000)
    assert res.ok
    rsts = [e for e in evs if e.get("ev") == "fault" and e["action"] == "inject" and "i" in e]
    assert len(rsts) == 20
    assert len([e for e in evs if e.get("stack") == "b" and e.get("ev") == "drop"
                and e.get("reason") == "rst-in-window"]) >= 1


def test_sim_half_open_peer_times_out() -> None:
    """RFC 1122 4.2.3.5: b retransmits to a host that vanished and gives up (R2)."""
    sim = Sim(seed=4, faults=persona_texts(["half-open"]), config_b=Config(retries2=3))
    res = transfer(sim, 20_000, max_time_us=120 * SEC)
    assert not res.ok
    assert res.server is not None and res.server.error == errno.ETIMEDOUT


def test_sim_syn_flooder_sends_64_syns_from_other_ports() -> None:
    evs: list[dict] = []
    sim = Sim(seed=5, faults=persona_texts(["syn-flooder"]), tracer=evs.append)
    res = transfer(sim, 10_000)
    syns = [e for e in evs if e.get("ev") == "fault" and e["action"] == "inject" and "i" in e]
    assert len(syns) == 64 and len({e["sport"] for e in syns}) == 64
    assert all(e["flags"] == "S" for e in syns)
    assert res.ok                                        # the genuine connection works
