"""rawtcp.core is sans-IO: no module under it may import scapy, time, socket, select,
threading or os (DESIGN.md, "core/ is sans-IO")."""

from __future__ import annotations

import ast
import pathlib

import rawtcp.core

FORBIDDEN = {"scapy", "time", "socket", "select", "threading", "os"}
CORE = pathlib.Path(rawtcp.core.__file__).parent


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            if node.args and isinstance(node.args[0], ast.Constant):
                names.add(str(node.args[0].value).split(".")[0])
    return names


def test_core_modules_exist() -> None:
    files = {p.name for p in CORE.glob("*.py")}
    for required in ("stack.py", "tcb.py", "rtt.py", "congestion.py", "buffers.py", "timers.py",
                     "isn.py", "segment.py", "seq.py", "config.py"):
        assert required in files


def test_core_imports_nothing_forbidden() -> None:
    bad = {}
    for path in sorted(CORE.rglob("*.py")):
        hit = _imports(path) & FORBIDDEN
        if hit:
            bad[path.name] = sorted(hit)
    assert bad == {}, f"core modules import forbidden modules: {bad}"


def test_checker_detects_a_forbidden_import(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "m.py"
    p.write_text("import os.path\nfrom time import monotonic\nimport errno\n")
    assert _imports(p) & FORBIDDEN == {"os", "time"}
