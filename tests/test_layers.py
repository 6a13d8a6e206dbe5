"""The package's layers point one way (docs/architecture.md): no two packages import each other, migrations
import no application code, and the benchmarks do not import the tests."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_two_packages_of_streampay_import_each_other():
    imports = defaultdict(set)
    for path in (ROOT / "streampay").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if len(parts) < 3:
            continue  # streampay/__init__.py and the top-level modules wire or serve every package
        for name in imported_modules(path):
            target = name.split(".")
            if target[0] == "streampay" and len(target) > 1 and target[1] != parts[1]:
                imports[parts[1]].add(target[1])
    cycles = sorted((a, b) for a in imports for b in imports[a] if a < b and a in imports.get(b, ()))
    assert not cycles, f"packages that import each other: {cycles}"


def test_migrations_and_benchmarks_stand_apart():
    for path in (ROOT / "migrations").rglob("*.py"):
        assert not any(n.startswith("streampay") for n in imported_modules(path)), path
    for path in (ROOT / "bench").rglob("*.py"):
        assert not any(n == "tests" or n.startswith("tests.") for n in imported_modules(path)), path
