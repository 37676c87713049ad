"""The layers, checked by reading imports (with ast, nothing is executed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "signoff"
DOMAIN = ["models", "errors", "serialization", "journal", "clock", "durations", "audit"]
UPPER = ["store", "runner", "worker", "engine", "cli", "server", "sync", "context", "notify"]
DRIVERS = {"sqlite3", "psycopg", "psycopg_pool", "psycopg2", "asyncpg"}


def imported_modules(path: Path) -> set[str]:
    """Absolute module names that `path` imports, at any depth (also inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # `from signoff import store` imports the module signoff.store
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_the_helper_reads_imports() -> None:
    found = imported_modules(PACKAGE / "engine.py")
    assert "signoff.store" in found and "signoff.worker" in found
    assert imported_modules(PACKAGE / "models.py") >= {"dataclasses", "enum"}


@pytest.mark.parametrize("module", DOMAIN)
def test_domain_modules_import_no_upper_layer(module: str) -> None:
    path = PACKAGE / f"{module}.py"
    assert path.exists(), path
    forbidden = {f"signoff.{name}" for name in UPPER}
    bad = sorted(
        m for m in imported_modules(path) if any(m == f or m.startswith(f + ".") for f in forbidden)
    )
    assert bad == [], f"signoff/{module}.py imports {bad}"


def test_drivers_are_imported_only_inside_store() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "store":
            continue
        drivers = {m.split(".")[0] for m in imported_modules(path)} & DRIVERS
        if drivers:
            offenders.append(f"{rel}: {sorted(drivers)}")
    assert offenders == []


def test_store_does_not_reach_up_into_the_runtime() -> None:
    forbidden = (
        "signoff.engine",
        "signoff.runner",
        "signoff.worker",
        "signoff.cli",
        "signoff.server",
        "signoff.sync",
        "signoff.context",
    )
    offenders = []
    for path in sorted((PACKAGE / "store").rglob("*.py")):
        bad = [m for m in imported_modules(path) if m.startswith(forbidden)]
        if bad:
            offenders.append(f"{path.relative_to(PACKAGE)}: {sorted(bad)}")
    assert offenders == []


def test_server_and_client_go_through_the_engine() -> None:
    """The HTTP layer uses `Engine`, never the store or the runtime underneath it; the
    client talks HTTP only."""
    offenders = []
    for path in sorted((PACKAGE / "server").rglob("*.py")):
        bad = [m for m in imported_modules(path)
               if m.startswith(("signoff.store", "signoff.runner", "signoff.worker",
                                "signoff.cli"))]  # fmt: skip
        if bad:
            offenders.append(f"{path.relative_to(PACKAGE)}: {sorted(bad)}")
    client = [m for m in imported_modules(PACKAGE / "client.py")
              if m.startswith(("signoff.engine", "signoff.store", "signoff.server"))]  # fmt: skip
    assert offenders == [] and client == []
