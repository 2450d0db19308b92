"""The layout's rules, read from the source: dependencies point one way, and no module imports
itself back through others. Function-level imports count as much as module-level ones."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("binaries", "peridio_console", "peridio_cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports (`from a import b` counts as a.b when b is one)."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in MODULES:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name and not name.startswith(candidate + "."):
                targets.add(candidate)
    return targets


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_it_finds_the_modules_it_checks():
    assert {"binaries.moves", "peridio_console.accounts.models", "peridio_cli.main"} <= set(GRAPH)
    assert "binaries.lifecycle" in GRAPH["binaries.moves"]


def test_it_has_no_import_cycle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


# Who may import whom: binaries -> accounts -> core, never back; the project (settings, urls)
# wires them together; the CLI stands alone.
ALLOWED_EXCEPTIONS = {"peridio_console.urls", "peridio_console.settings"}


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_it_keeps_dependencies_pointing_one_way(name):
    def layer(module: str) -> str:
        if module.startswith("peridio_console.core"):
            return "core"
        if module.startswith("peridio_console.accounts"):
            return "accounts"
        return module.split(".")[0]

    forbidden = {
        "core": {"accounts", "binaries", "peridio_cli"},
        "accounts": {"binaries", "peridio_cli"},
        "peridio_console": {"binaries", "peridio_cli"},
        "binaries": {"peridio_cli"},
        "peridio_cli": {"core", "accounts", "binaries", "peridio_console"},
    }[layer(name)]
    if name in ALLOWED_EXCEPTIONS:
        forbidden = {"peridio_cli"}
    wrong = sorted(t for t in GRAPH[name] if layer(t) in forbidden)
    assert not wrong, f"{name} imports {wrong}"


def test_the_cli_needs_no_django():
    for name, path in MODULES.items():
        if name.startswith("peridio_cli"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    module = getattr(node, "module", None) or node.names[0].name
                    assert not module.startswith("django"), f"{name} imports {module}"
