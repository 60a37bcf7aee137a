"""The command's modules import downwards only: cli -> commands -> cli_support (issue 14,
"Layers that hold": cli <-> commands was a circle)."""

from __future__ import annotations

import ast
import pathlib

import rawtcp

PKG = pathlib.Path(rawtcp.__file__).parent


def _rawtcp_imports(name: str, root: pathlib.Path = PKG) -> set[str]:
    """Every rawtcp module a module imports, at top level or inside functions."""
    tree = ast.parse((root / name).read_text(), filename=name)
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("rawtcp"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "rawtcp":
                out.update(f"rawtcp.{a.name}" for a in node.names)
            elif node.module.startswith("rawtcp."):
                out.add(node.module)
    return out


def test_commands_never_imports_cli():
    assert "rawtcp.cli" not in _rawtcp_imports("commands.py")
    assert "rawtcp.cli_support" in _rawtcp_imports("commands.py")


def test_cli_support_imports_neither_cli_nor_commands():
    assert not _rawtcp_imports("cli_support.py") & {"rawtcp.cli", "rawtcp.commands"}


def test_the_checker_sees_an_import_inside_a_function(tmp_path):
    (tmp_path / "m.py").write_text("import os\ndef f():\n    from rawtcp import cli\n")
    assert _rawtcp_imports("m.py", tmp_path) == {"rawtcp.cli"}
