"""Personas: misbehaving peers made only of fault rules (``--persona NAME``).

A persona is a name for a list of rule texts (action first, as ``parse_action_rule`` reads
them); ``rawtcp persona list`` prints each with what it does and what a Linux peer is
expected to do about it, and the ``persona-*`` experiments (rawtcp/experiments/personas.py)
run each against the kernel. ``--persona`` may be given more than once: the rules of all the
personas named are used, in the order given, after the other fault options.
"""

from __future__ import annotations

from dataclasses import dataclass

from rawtcp.faults.grammar import Rule, RuleError, parse_action_rule

__all__ = ["PERSONAS", "Persona", "persona_rules", "persona_texts"]


@dataclass(frozen=True)
class Persona:
    name: str
    title: str
    rules: tuple[str, ...]
    does: str
    kernel: str

    def explain(self) -> str:
        """One paragraph: what it does, its rules, what the kernel is expected to do."""
        return (f"{self.does} Rules: {'; '.join(self.rules)}. Expected of the kernel: "
                f"{self.kernel}")


_TABLE = (
    Persona(
        "never-fin", "rawtcp never sends its FIN",
        ("mangle out flags=+F set flags-=F",),
        "rawtcp's FIN never leaves: the FIN bit is taken off every segment that carries it "
        "(the segment itself still goes, so ACKs and data flow), as a peer whose "
        "application closes but whose TCP never says so.",
        "a kernel that closed first waits in FIN_WAIT_2 for a FIN that never comes, and an "
        "orphaned socket leaves FIN_WAIT_2 after net.ipv4.tcp_fin_timeout (RFC 9293 3.6 has "
        "no such timer; it is Linux's defence)."),
    Persona(
        "no-final-ack", "rawtcp's last ACK is always lost",
        ("drop out flags=A len=0 state=TIME_WAIT",),
        "rawtcp closes first but its last ACK (the one from TIME_WAIT that acknowledges the "
        "peer's FIN) is always lost, every time it is sent.",
        "the kernel stays in LAST_ACK and retransmits its FIN with a growing timeout (RTO "
        "backoff) until rawtcp's TIME_WAIT is over and rawtcp answers the next FIN with a "
        "RST (RFC 9293 3.10.7.1), or until the kernel gives up itself."),
    Persona(
        "zero-window-forever", "rawtcp advertises a zero window forever",
        ("mangle out flags=+A-S set win=0",),
        "rawtcp advertises a zero window on every segment after its SYN, however much it "
        "has read: the sender may never send data, only window probes.",
        "the kernel sends zero-window probes with exponential backoff (RFC 9293 3.8.6.1, "
        "RFC 1122 4.2.2.17) and keeps the connection while the probes are answered; it "
        "gives up only on its own limits (tcp_retries2 for unanswered probes, "
        "TCP_USER_TIMEOUT)."),
    Persona(
        "shrinking-window", "rawtcp withdraws the window it offered",
        ("mangle out flags=A len=0 state=ESTABLISHED p=0.5 seed=12 set win=0",),
        "about every other pure ACK withdraws the whole window the previous one offered "
        "(advertises zero while acknowledging data): the right edge of the window moves "
        "left, which RFC 9293 3.8.6.2.2 says a receiver should not do and a sender must "
        "survive.",
        "the kernel stops at the shrunken edge, probes when the window is zero, sends again "
        "when it reopens, and every byte arrives intact."),
    Persona(
        "slow-reader", "rawtcp reads 512 bytes at a time",
        ("mangle out flags=+S set -wscale", "mangle out flags=+A-S set win=512"),
        "rawtcp reads as if it took 512 bytes at a time: no window scaling, and every "
        "segment advertises 512 bytes (the slow-read attack: the sender's buffers stay "
        "full and it dribbles).",
        "the kernel sends segments of at most 512 bytes, one window per round trip, and "
        "finishes the transfer, slowly."),
    Persona(
        "ack-withholder", "rawtcp holds every ACK back 1 s",
        ("delay out flags=A len=0 state=ESTABLISHED ms=1000",),
        "every pure ACK rawtcp sends in ESTABLISHED is held back one second, longer than "
        "the kernel's retransmission timeout.",
        "the kernel's RTO fires, it retransmits data that had arrived (spurious "
        "retransmissions), rawtcp reports the duplicates (D-SACK, RFC 2883), the late ACKs "
        "arrive and the transfer completes."),
    Persona(
        "rst-storm", "a storm of blind in-window RSTs",
        ("inject on=ESTABLISHED send RST seq=snd_nxt+1 count=20 every=50 step=997",),
        "once established, rawtcp sends 20 RSTs, 50 ms apart, with sequence numbers inside "
        "the peer's window but never the exact next one: a blind reset attack (RFC 5961 "
        "3.1).",
        "the kernel answers in-window RSTs with challenge ACKs (RFC 5961 3.2), rate limited "
        "(RFC 5961 7; net.ipv4.tcp_invalid_ratelimit per socket), and the connection "
        "survives."),
    Persona(
        "half-open", "rawtcp vanishes without a RST",
        ("drop in state=ESTABLISHED,FIN_WAIT_1,FIN_WAIT_2,CLOSE_WAIT,CLOSING,LAST_ACK,"
         "TIME_WAIT", "drop out len>0", "drop out flags=+F", "drop out flags=+R"),
        "once the handshake is done rawtcp vanishes without a RST: nothing the peer sends "
        "reaches it, and none of its data, FINs or RSTs leave (a host that crashed or was "
        "unplugged).",
        "the kernel retransmits what it sends with exponential backoff and, after "
        "net.ipv4.tcp_retries2 retransmissions (RFC 1122 4.2.3.5 R2), gives the connection "
        "up with ETIMEDOUT."),
    Persona(
        "syn-flooder", "a SYN flood from 64 other ports",
        ("inject out flags=S send SYN seq=iss+1000 count=64 every=2 step=7919 sport+=1",
         "drop out flags=+R"),
        "when rawtcp sends its first SYN it also sends 64 SYNs from the next 64 ports of its "
        "address, 2 ms apart, and never completes them (the RSTs its stack would send for "
        "the SYN-ACKs are dropped): a SYN flood.",
        "the kernel keeps SYN_RECV entries up to its backlog and retransmits SYN-ACKs; past "
        "the backlog it answers with SYN cookies (net.ipv4.tcp_syncookies, RFC 4987 3.6) or "
        "drops SYNs, and the genuine connection still works."),
)

#: name -> Persona, in the order ``rawtcp persona list`` shows
PERSONAS: dict[str, Persona] = {p.name: p for p in _TABLE}


def persona_texts(names: list[str] | tuple[str, ...]) -> list[str]:
    """The rule texts of the named personas, in order. RuleError (one line) for an
    unknown name."""
    out: list[str] = []
    for name in names:
        p = PERSONAS.get(name.strip().lower())
        if p is None:
            raise RuleError(f"unknown persona {name!r} (known: {', '.join(PERSONAS)})")
        out.extend(p.rules)
    return out


def persona_rules(names: list[str] | tuple[str, ...]) -> list[Rule]:
    """The rules of the named personas, parsed."""
    return [parse_action_rule(t) for t in persona_texts(names)]
