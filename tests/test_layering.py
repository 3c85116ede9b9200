"""The import direction of DESIGN.md, checked on the source with ``ast`` (imports inside functions too).

``cli -> devnet -> node, oracle, requester -> workflow -> protocol``: protocol imports none of ours,
workflow only protocol, node and oracle never each other nor cli; requester only protocol and
workflow; devnet never cli. Nothing outside tests imports asyncio: Synod
runs on trio alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("protocol", "workflow", "node", "oracle", "requester", "devnet", "cli")
OURS = {*PACKAGES, "scripts", "tests"}

# package -> the packages of ours it must never import
FORBIDDEN: dict[str, set[str]] = {
    "protocol": OURS - {"protocol"},
    "workflow": OURS - {"workflow", "protocol"},
    "node": {"oracle", "requester", "devnet", "cli", "scripts", "tests"},
    "oracle": {"node", "requester", "devnet", "cli", "scripts", "tests"},
    "requester": OURS - {"requester", "protocol", "workflow"},
    "devnet": {"cli", "scripts", "tests"},
    "cli": {"scripts", "tests"},
}


def _sources(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


def _imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Absolute names of every module ``path`` imports, with line numbers (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = path.relative_to(root).parts[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - (node.level - 1)])
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def test_sources_exist() -> None:
    assert _sources("protocol"), "no sources under protocol/: the layering test would check nothing"


@pytest.mark.parametrize("package", PACKAGES)
def test_import_direction(package: str) -> None:
    violations = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _sources(package)
        for line, name in _imported_modules(path)
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert violations == [], f"{package} breaks the layering of DESIGN.md:\n" + "\n".join(violations)


def test_no_asyncio_outside_tests() -> None:
    violations = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _sources(*PACKAGES, "scripts")
        for line, name in _imported_modules(path)
        if name.split(".")[0] == "asyncio"
    ]
    assert violations == [], "Synod is trio-only; asyncio imported in:\n" + "\n".join(violations)


def test_the_checker_sees_relative_and_nested_imports(tmp_path: Path) -> None:
    module = tmp_path / "protocol" / "chain" / "m.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from . import sender\nfrom ..types import TaskId\n"
        "def f() -> None:\n    import asyncio\n    from node import x\n",
        encoding="utf-8",
    )
    names = [name for _, name in _imported_modules(module, tmp_path)]
    assert names == ["protocol.chain", "protocol.types", "asyncio", "node"]
