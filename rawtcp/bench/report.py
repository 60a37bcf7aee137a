"""The bench's results: figures (rawtcp next to its reference), as a table or as JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import dataclass, field
from typing import Any

from rawtcp.bench.run import Measure


@dataclass
class Figure:
    """One row: rawtcp's value and the reference's, measured in the same run."""

    key: str
    name: str
    unit: str
    reference_is: str
    check: str                       # what was verified: "sha256" or "echo"
    rawtcp: Measure | None = None
    reference: Measure | None = None
    errors: list[str] = field(default_factory=list)
    # with --repeat: each round's (rawtcp, reference), measured one after the other; rawtcp
    # and reference above are then each side's median run
    runs: list[tuple[Measure | None, Measure | None]] = field(default_factory=list)
    # the other kind of reference (a bare Python endpoint where the reference is the
    # kernel, and the other way round), measured in the same rounds; "" when there is none
    second_is: str = ""
    second: Measure | None = None
    second_runs: list[Measure | None] = field(default_factory=list)
    # the key of the figure this row is a part of (the first and last 10 % of the connection
    # rate): its errors are that figure's, which the table prints once, under the figure
    part_of: str = ""

    def settle(self) -> None:
        """After the rounds: each side's run with the median value stands for the side."""
        for i, side in enumerate(("rawtcp", "reference")):
            setattr(self, side, _median_run([r[i] for r in self.runs]))
        self.second = _median_run(self.second_runs)

    @property
    def ratios(self) -> list[float]:
        """Each round's ratio (rawtcp over the reference measured right after it)."""
        return _ratios([a for a, _ in self.runs], [b for _, b in self.runs])

    @property
    def ratio(self) -> float | None:
        return self._ratio(self.ratios, self.reference)

    @property
    def second_ratio(self) -> float | None:
        return self._ratio(_ratios([a for a, _ in self.runs], self.second_runs), self.second)

    def _ratio(self, rounds: list[float], ref: Measure | None) -> float | None:
        if len(self.runs) > 1:
            return statistics.median(rounds) if rounds else None
        if self.rawtcp is None or ref is None or ref.value <= 0:
            return None
        return self.rawtcp.value / ref.value

    def _sides(self) -> list[tuple[str, Measure | None]]:
        out = [("rawtcp", self.rawtcp), ("reference", self.reference)]
        return out + [("second reference", self.second)] if self.second_is else out

    @property
    def ok(self) -> bool:
        sides = [m for _, m in self._sides()] + [m for r in self.runs for m in r]
        if self.second_is:
            sides += self.second_runs
        return not self.errors and all(m is not None and m.sha_ok is not False for m in sides)

    def _side_runs(self) -> dict[str, list[Measure | None]]:
        """Every run of each side: the rounds with --repeat, else the one value."""
        if not self.runs:
            return {s: [m] for s, m in self._sides()}
        out = {"rawtcp": [a for a, _ in self.runs], "reference": [b for _, b in self.runs]}
        return {**out, "second reference": list(self.second_runs)} if self.second_is else out

    def check_ok(self, side: str) -> bool | None:
        """The side's check over all its runs: False when one failed (even one that is not
        the median run), None when no run of it was measured or checked."""
        done = [m for m in self._side_runs().get(side, []) if m is not None]
        if any(m.sha_ok is False for m in done):
            return False
        return True if any(m.sha_ok for m in done) else None

    def verdict(self) -> str:
        if self.errors:
            return "error"
        bad = []
        for side, ms in self._side_runs().items():
            rounds = [str(i + 1) for i, m in enumerate(ms) if m is not None and m.sha_ok is False]
            if rounds:
                many = "s" if len(rounds) > 1 else ""
                bad.append(side + (f" in round{many} {'/'.join(rounds)}" if len(ms) > 1 else ""))
        return f"{self.check} MISMATCH ({', '.join(bad)})" if bad else f"{self.check} ok"

    def to_dict(self) -> dict[str, Any]:
        def side(m: Measure | None) -> float | None:
            return None if m is None else round(m.value, 3)

        return {
            "key": self.key,
            "figure": self.name,
            "unit": self.unit,
            "rawtcp": side(self.rawtcp),
            "reference": side(self.reference),
            "reference_is": self.reference_is,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "runs": [{"rawtcp": side(a), "reference": side(b),
                      "ratio": None if a is None or b is None or b.value <= 0
                      else round(a.value / b.value, 3),
                      "rawtcp_check_ok": None if a is None else a.sha_ok,
                      "reference_check_ok": None if b is None else b.sha_ok}
                     for a, b in self.runs],
            "check": self.check,
            "rawtcp_check_ok": self.check_ok("rawtcp"),
            "reference_check_ok": self.check_ok("reference"),
            "ok": self.ok,
            "errors": list(self.errors),
            "details": {"rawtcp": self.rawtcp.details if self.rawtcp else None,
                        "reference": self.reference.details if self.reference else None,
                        **({"second_reference": self.second.details if self.second else None}
                           if self.second_is else {})},
            **({"second_reference": side(self.second),
                "second_reference_is": self.second_is,
                "second_ratio": None if self.second_ratio is None
                else round(self.second_ratio, 3),
                "second_runs": [side(m) for m in self.second_runs],
                "second_check_ok": self.check_ok("second reference")}
               if self.second_is else {}),
        }


def _median_run(ms: list[Measure | None]) -> Measure | None:
    done = sorted((m for m in ms if m is not None), key=lambda m: m.value)
    return done[(len(done) - 1) // 2] if done else None


def _ratios(a: list[Measure | None], b: list[Measure | None]) -> list[float]:
    """Round by round: a over b, where both were measured."""
    return [x.value / y.value for x, y in zip(a, b)
            if x is not None and y is not None and y.value > 0]


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "machine": platform.machine()}


def to_json(figures: list[Figure], settings: dict[str, Any]) -> str:
    return json.dumps({"settings": settings, "machine": machine(),
                       "figures": [f.to_dict() for f in figures],
                       "ok": all(f.ok for f in figures)}, indent=2)


def _value(m: Measure | None, unit: str) -> str:
    if m is None:
        return "-"
    return f"{m.value:,.1f} {unit}" if m.value < 100 else f"{m.value:,.0f} {unit}"


def _ratio_text(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}"


def to_table(figures: list[Figure], settings: dict[str, Any]) -> str:
    seconds = any(f.second_is for f in figures)
    head = ("figure", "rawtcp", "reference", "ratio") + (
        ("2nd reference", "ratio") if seconds else ()) + ("check", "reference is")
    rows = [head]
    for f in figures:
        row = (f.name, _value(f.rawtcp, f.unit), _value(f.reference, f.unit),
               _ratio_text(f.ratio))
        if seconds:
            row += ((_value(f.second, f.unit), _ratio_text(f.second_ratio)) if f.second_is
                    else ("", ""))
        rows.append(row + (f.verdict(), f.reference_is))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    right = {1, 2, 3, 4, 5} if seconds else {1, 2, 3}
    lines = [_header(settings), ""]
    for r in rows:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                 for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
    groups: dict[str, list[str]] = {}     # 2nd reference -> the figures' names (unique)
    for f in figures:
        if f.second_is and not f.name.startswith(" "):
            names = groups.setdefault(f.second_is, [])
            short = f.name.split(",")[0]
            if short not in names:
                names.append(short)
    if groups:
        lines += ["", "2nd reference is:"]
        lines += [f"  {', '.join(names)}: {desc}" for desc, names in groups.items()]
    repeat = settings.get("repeat", 1)
    if repeat > 1:
        lines += ["", f"{repeat} rounds, rawtcp then its reference in each: the values are "
                  "each side's median run, the ratio the median of the rounds' ratios:"]
        lines += [f"  {f.name.strip()}: " + " ".join(f"{r:.2f}" for r in f.ratios)
                  + (" (2nd reference: " + " ".join(
                      f"{r:.2f}" for r in _ratios([a for a, _ in f.runs], f.second_runs))
                     + ")" if f.second_is else "")
                  for f in figures if f.ratios]
    for f in figures:
        if not f.part_of:                # a part's errors are its figure's, printed there
            lines += [f"error: {f.name}: {e}" for e in f.errors]
    return "\n".join(lines)


def _header(settings: dict[str, Any]) -> str:
    """The table's first line: what was run. The bulk figures' MTUs, offload and size only
    when a bulk test ran; the connection rate's count and MTU (the first) when it ran."""
    m = machine()
    mtus = settings["mtu"] if isinstance(settings["mtu"], list) else [settings["mtu"]]
    tests = settings.get("tests") or ["recv", "send", "conn"]
    bulk = "recv" in tests or "send" in tests
    parts = []
    if bulk:
        parts.append(f"TUN MTU {', '.join(str(mtu) for mtu in mtus)}"
                     + {"on": " with offload", "both": " (with and without offload)"}.get(
                         str(settings.get("offload")), "")
                     + f", {settings['size_mb']:,} MB per transfer")
    if "conn" in tests:
        conn_mtu = "" if bulk and len(mtus) == 1 else f" at TUN MTU {mtus[0]}"
        parts.append(f"{settings['conns']:,} connections{conn_mtu}")
    return (f"rawtcp bench: {', '.join(parts)} (" + ("MB = 10^6 bytes; " if bulk else "")
            + f"{m['cpus']} CPUs, Linux {m['kernel']}, 1-min load average before the run "
            + f"{settings.get('load_before', '?')})")
