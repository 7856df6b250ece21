"""What a fresh install of the catalogue depends on is declared, and declared honestly.

A fresh clone gets whatever pyproject.toml allows: these tests fail when the installed
optimizer libraries fall outside the declared ranges, when a library the catalogue needs is
missing from the dependencies, or when the source stops working on the oldest Python declared.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path

from descentlab.engine.compat import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SOURCE_DIRS = ("app", "engine", "plugins", "tests", "benchmarks")


def _requirement(name: str) -> str:
    """The dependency string for the distribution `name` (one, without a marker)."""
    found = [
        d
        for d in PYPROJECT["project"]["dependencies"]
        if re.split(r"[<>=!~; ]", d, maxsplit=1)[0].lower().replace("_", "-") == name
    ]
    assert len(found) == 1, f"{name} is declared {len(found)} times: {found}"
    return found[0]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _within(installed: str, requirement: str) -> bool:
    """Whether `installed` meets every `>=` and `<` clause of `requirement`."""
    have = _version(installed)
    for op, bound in re.findall(r"(>=|<)\s*([\d.]+)", requirement):
        if op == ">=" and have < _version(bound):
            return False
        if op == "<" and have >= _version(bound):
            return False
    return True


def test_optimizer_libraries_are_declared_with_both_bounds_and_installed_within_them() -> None:
    for name in ("pytorch-optimizer", "geoopt"):
        requirement = _requirement(name)
        assert ">=" in requirement and "<" in requirement.replace("<=", ""), requirement
        installed = importlib.metadata.version(name)
        assert _within(installed, requirement), f"{name} {installed} is outside {requirement}"


def test_opt_einsum_is_a_dependency() -> None:
    """torch.einsum uses it when importable; PSGD Kron is ~1,000× slower without it."""
    assert _requirement("opt-einsum")
    importlib.metadata.version("opt_einsum")


def test_python_310_stays_declared_and_targeted() -> None:
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py310"
    assert "tomli>=2.0; python_version < '3.11'" in PYPROJECT["project"]["dependencies"]


def _unconditional_tomllib_imports(tree: ast.AST) -> list[int]:
    """Lines that import `tomllib` outside an `if` or `try` (which would fail on 3.10)."""
    lines: list[int] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Import) and not guarded:
            lines.extend(node.lineno for alias in node.names if alias.name == "tomllib")
        if isinstance(node, ast.ImportFrom) and node.module == "tomllib" and not guarded:
            lines.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, guarded or isinstance(node, (ast.If, ast.Try)))

    visit(tree, False)
    return lines


def test_the_scan_finds_an_unconditional_import_and_accepts_a_guarded_one() -> None:
    plain = ast.parse("import os\nimport tomllib\n")
    guarded = ast.parse(
        "import sys\nif sys.version_info >= (3, 11):\n    import tomllib\n"
        "else:\n    import tomli as tomllib\n"
    )
    assert _unconditional_tomllib_imports(plain) == [2]
    assert _unconditional_tomllib_imports(guarded) == []


def test_no_source_imports_tomllib_unconditionally() -> None:
    """Python 3.10 has no tomllib; import it from `descentlab.engine.compat`."""
    offenders = []
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            offenders += [
                f"{path.relative_to(ROOT)}:{n}" for n in _unconditional_tomllib_imports(tree)
            ]
    assert not offenders, f"unconditional `import tomllib` (breaks Python 3.10): {offenders}"
