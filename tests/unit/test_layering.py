"""The layering rule of CONVENTIONS.md 3-4: wire formats are parsed at the edge.

Domain modules (model, validation, storage, stored queries, transactions) import
neither lxml nor Flask; only codecs (registry.ebrim, hub.soap) and views do.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_MODULES = sorted(
    [ROOT / "registry" / name for name in ("model.py", "validation.py", "store.py", "tables.py", "builders.py",
                                            "vocabulary.py")]
    + list((ROOT / "registry" / "queries").glob("*.py"))
    + list((ROOT / "registry" / "transactions").glob("*.py"))
)
FORBIDDEN = ("lxml", "flask", "werkzeug")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", DOMAIN_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_domain_modules_import_no_wire_or_web_framework(path: Path) -> None:
    offending = {m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN}
    assert not offending, f"{path.relative_to(ROOT)} imports {sorted(offending)}"


def test_the_rule_sees_the_modules_it_guards() -> None:
    assert len(DOMAIN_MODULES) >= 10
    assert "lxml" in imported_modules(ROOT / "registry" / "ebrim" / "parse.py")
