"""The package's layout, read from its imports: no cycle, and no private name imported from
another module (a leading underscore means "only this module relies on it")."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"


def _imports() -> dict[str, set[tuple[str, str]]]:
    """Each module of counterfake -> (module, name) pairs it imports from counterfake."""
    found: dict[str, set[tuple[str, str]]] = {}
    for path in (SOURCE / "counterfake").rglob("*.py"):
        module = ".".join(path.relative_to(SOURCE).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("counterfake"):
                names |= {(node.module or "", alias.name) for alias in node.names}
        found[module] = names
    return found


def _dependencies(imports: dict[str, set[tuple[str, str]]]) -> dict[str, set[str]]:
    graph = {}
    for module, names in imports.items():
        targets = set()
        for source, name in names:
            targets.add(f"{source}.{name}" if f"{source}.{name}" in imports else source)
        graph[module] = {t for t in targets if t in imports and t != module}
    return graph


def test_no_module_imports_another_modules_private_names():
    private = sorted(
        f"{module} imports {source}.{name}"
        for module, names in _imports().items()
        for source, name in names
        if name.startswith("_") and not name.startswith("__") and source != module
    )
    assert private == []


def test_imports_have_no_cycle():
    graph = _dependencies(_imports())
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
