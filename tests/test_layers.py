"""The CLI is the top floor (STYLE.md, issue 12): no module of the packages, the benchmarks or the scripts
imports app.cli (the CLI imports workers/ and training/ lazily, never the other way round)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOORS = ("app", "encoder", "training", "workers", "benchmarks", "scripts")


def imports_of(path: Path, package: str) -> set[str]:
    """Every module a file of `package` imports (`import a.b`; `from a.b import c` as a.b and a.b.c; relative
    imports resolved against `package`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def test_nothing_below_the_cli_imports_it():
    offenders = []
    for floor in FLOORS:
        for path in sorted((REPO / floor).rglob("*.py")):
            if path == REPO / "app" / "cli.py":
                continue
            if "app.cli" in imports_of(path, ".".join(path.relative_to(REPO).parts[:-1])):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == [], f"these import app.cli, the top floor: {offenders}"


def test_the_check_sees_an_import_of_the_cli(tmp_path):
    """Not vacuous: every spelling of the import is found, relative ones too."""
    probe = tmp_path / "probe.py"
    for text in ("from app.cli import main\n", "from app import cli\n", "import app.cli\n", "from .cli import main\n",
                 "from . import cli\n"):
        probe.write_text(text)
        assert "app.cli" in imports_of(probe, "app"), text
