"""Dependencies point one way: the backends sit below the ops they serve (read from the source, not run).

Every ``import`` and ``from ... import`` in the package, at module level or inside a
function, is an edge from the importing module to the imported one. The backends
(``cnnkit.cpu``, ``cnnkit.cuda``) register with the registry and share only the leaf
modules below it; the ops, optimizers and layers build on top.
"""
import ast
import itertools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cnnkit"
BACKENDS = ("cnnkit.cpu", "cnnkit.cuda")
ABOVE_THE_BACKENDS = ("cnnkit.ops", "cnnkit.optimizers", "cnnkit.layers")
# The packages and modules that form the core, bottom to top; none may reach back up.
CORE = ("cnnkit.backend", "cnnkit.philox", "cnnkit.window", "cnnkit.registry", "cnnkit.cpu", "cnnkit.cuda", "cnnkit.ops",
        "cnnkit.optimizers", "cnnkit.layers")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(name: str) -> set[str]:
    """The cnnkit modules that module ``name`` imports, anywhere in its source."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            # ``from . import conv`` imports a module; ``from .conv import im2col`` a name of one.
            found.update(f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                         for alias in node.names)
    return {module for module in found if module.split(".")[0] == "cnnkit"}


def unit_of(module: str) -> str | None:
    """The entry of CORE that ``module`` belongs to, if any."""
    for unit in CORE:
        if module == unit or module.startswith(unit + "."):
            return unit
    return None


def test_the_parser_sees_relative_and_absolute_imports():
    assert "cnnkit.registry" in imported_modules("cnnkit.cpu.conv")
    assert "cnnkit.cpu.threads" in imported_modules("cnnkit.cpu.sharded")
    assert "cnnkit.cuda.launcher" in imported_modules("cnnkit.cuda.conv")
    assert "cnnkit.window" in imported_modules("cnnkit.ops.conv")
    assert {"cnnkit.cpu", "cnnkit.cuda.ops"} <= imported_modules("cnnkit")


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_import_nothing_from_the_ops_optimizers_or_layers(backend):
    offending = sorted(f"{name} imports {imported}" for name in MODULES if unit_of(name) == backend
                       for imported in imported_modules(name) if unit_of(imported) in ABOVE_THE_BACKENDS)
    assert not offending, "\n".join(offending)


def test_the_leaf_modules_import_only_the_backend_switch():
    assert imported_modules("cnnkit.backend") == set()
    assert imported_modules("cnnkit.philox") == set()
    assert imported_modules("cnnkit.window") == {"cnnkit.backend"}
    assert imported_modules("cnnkit.registry") == {"cnnkit.backend"}


def test_no_import_cycle_among_the_core_packages():
    edges = {unit: set() for unit in CORE}
    for name in MODULES:
        unit = unit_of(name)
        if unit is not None:
            edges[unit].update(unit_of(m) for m in imported_modules(name) if unit_of(m) not in (None, unit))
    for start, end in itertools.permutations(CORE, 2):
        if end in edges[start]:
            assert start not in reachable(end, edges), f"{start} -> {end} closes a cycle back to {start}"


def reachable(start: str, edges: dict) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for following in edges[stack.pop()] - seen:
            seen.add(following)
            stack.append(following)
    return seen
