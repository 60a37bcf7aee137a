"""The layers of shared/DESIGN.md hold: every import in rawtcp/ (module level and inside
functions) points down the layer order, and no modules or layers import each other in a
circle.

The order is data (LAYERS below): a module may import modules of its own layer or of layers
with a lower rank. Two more rules: core imports nothing of rawtcp outside core (it is
sans-IO), and nothing in report/ runs a stack (no runtime, socket or sim). A new top-level
module or package of rawtcp must be given its layer here.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

# ------------------------------------------------------------------------------ the order
# rank: higher layers may import lower ones (and their own layer), never higher ones.
LAYERS: dict[str, int] = {
    # host plumbing: `ip`/`nft` commands, namespaces, the object registry, privileges
    "host": 0,
    "privileges": 0,        # shim for rawtcp.host.privileges
    "argtypes": 0,          # numbers on a command line (standard library only)
    # sans-IO protocol core; raw packet links; labs (labs use links, links never use labs)
    "core": 1,
    "link": 1,
    "lab": 2,
    # codecs, fault rules, traces and pcap, reports
    "wire": 3,
    "faults": 3,
    "trace": 3,
    "report": 3,
    # real time + a link | virtual time + a simulated link
    "runtime": 4,
    "pipeline": 4,          # runtime.Stack's packet pipeline (decode, faults, pcap, encode)
    "sim": 4,
    "notify": 4,            # the readiness descriptor of a polled socket
    # BSD-like sockets over a running stack
    "socket": 5,
    "sockbase": 5,          # what the stream and datagram sockets share
    "sockopts": 5,          # the stream socket's options: defaults and setsockopt values
    "tcpinfo": 5,           # Linux's struct tcp_info, for getsockopt(TCP_INFO, buflen)
    "sockopt_calls": 5,     # the stream socket's setsockopt / getsockopt / tcp_info
    "patch": 5,             # rawtcp.patch: the socket module hands out rawtcp sockets
    "run": 6,               # `rawtcp run`: a program under patch (commands.py wires it)
    "udp_socket": 5,        # UDP (SOCK_DGRAM) sockets beside socket.py
    "bench": 6,
    "packetdrill": 6,       # scripts run over sockets on a virtual-clock stack
    "experiments": 7,
    "cli_support": 8,       # below cli and commands (CliError, print_json, argument types)
    "cli": 9,
    "commands": 9,
    "sweep_cli": 9,         # `rawtcp experiment sweep` (its own parser and handler)
    "__main__": 10,
    "__init__": 5,          # the package facade (`import rawtcp` loads the socket layer);
                            # cli reads __version__ from it
}

# Nothing in report/ runs a stack (DESIGN.md); the order forbids it already, said twice.
FORBIDDEN: dict[str, set[str]] = {"report": {"runtime", "socket", "sim"}}

# Known violations being removed in this session (by the lead and the CLI helper). Each
# must still occur (a stale entry fails the test): remove the entry with the fix.
# Written as "circle: a, b, ..." (modules in one import circle, sorted) or
# "order: a -> b" (an import against the layer order).
KNOWN_VIOLATIONS: set[str] = set()

ROOT = Path(__file__).resolve().parent.parent / "rawtcp"


# ------------------------------------------------------------------------------ reading imports
def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return _modules()[name].name == "__init__.py"


def _resolve(name: str) -> str | None:
    """The rawtcp module an import of ``name`` loads (the longest existing prefix)."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in _modules():
            return cand
        parts.pop()
    return None


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _walk(tree: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node, with whether it sits under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and _type_checking(child):
            for n in child.body:
                yield n, True
                yield from _walk(n, True)
            for n in child.orelse:
                yield n, typing_only
                yield from _walk(n, typing_only)
            continue
        yield child, typing_only
        yield from _walk(child, typing_only)


@functools.cache
def _imports(module: str) -> tuple[tuple[str, bool], ...]:
    """(imported rawtcp module, only for type checking) for every import in ``module``,
    including imports inside functions."""
    path = _modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if _is_package(module) else module.rpartition(".")[0]
    out: set[tuple[str, bool]] = set()
    for node, typing_only in _walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from pkg import name`: the submodule pkg.name if there is one, else pkg
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in _modules() else origin
                       for a in node.names]
        for t in targets:
            if t == "rawtcp" or t.startswith("rawtcp."):
                r = _resolve(t)
                if r is not None and r != module:
                    out.add((r, typing_only))
    return tuple(sorted(out))


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def _edges(include_typing: bool) -> dict[str, set[str]]:
    return {m: {t for t, typing_only in _imports(m) if include_typing or not typing_only}
            for m in _modules()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def violations() -> set[str]:
    """Every import circle and every import against the layer order, as text."""
    found: set[str] = set()
    # circles between modules (imports for type checking only do not run, so they are left out)
    for comp in _circles(_edges(include_typing=False)):
        found.add("circle: " + ", ".join(comp))
    # circles between layers (link -> lab -> link is one even when no two modules circle)
    layer_graph: dict[str, set[str]] = {}
    for m, targets in _edges(include_typing=False).items():
        layer_graph.setdefault(_layer(m), set()).update(
            _layer(t) for t in targets if _layer(t) != _layer(m))
    for comp in _circles(layer_graph):
        found.add("circle: " + ", ".join(f"{name}/" for name in comp))
    # the order, core's isolation and the report rule
    for m, targets in _edges(include_typing=True).items():
        src = _layer(m)
        for t in targets:
            dst = _layer(t)
            if dst == src:
                continue
            against = LAYERS[dst] > LAYERS[src]
            core_out = src == "core"
            forbidden = dst in FORBIDDEN.get(src, set())
            if against or core_out or forbidden:
                found.add(f"order: {m} -> {t}")
    return found


# ------------------------------------------------------------------------------ the tests
def test_every_part_of_rawtcp_has_a_layer() -> None:
    unknown = sorted({_layer(m) for m in _modules()} - LAYERS.keys())
    assert not unknown, (f"give {unknown} a layer in LAYERS of tests/test_layers.py "
                         "(and the layer picture of shared/DESIGN.md)")


def test_imports_follow_the_layers_and_never_circle() -> None:
    new = sorted(violations() - KNOWN_VIOLATIONS)
    assert not new, "imports against the layers of shared/DESIGN.md:\n" + "\n".join(new)


def test_known_violations_still_occur() -> None:
    """A violation that was fixed must leave KNOWN_VIOLATIONS (so the list only shrinks)."""
    stale = sorted(KNOWN_VIOLATIONS - violations())
    assert not stale, "fixed, remove from KNOWN_VIOLATIONS: " + ", ".join(stale)


# ------------------------------------------------------------------------------ the checker itself
def test_the_checker_sees_circles_and_imports_inside_functions(tmp_path: Path) -> None:
    """The reader finds imports inside functions and relative imports, and a circle."""
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []
    # sim.py imports the core with relative imports; experiments import lab inside functions
    assert "rawtcp.core.stack" in dict(_imports("rawtcp.sim"))
    assert "rawtcp.lab" in dict(_imports("rawtcp.experiments.base"))
    assert _layer("rawtcp.lab.base") == "lab" and _layer("rawtcp") == "__init__"
