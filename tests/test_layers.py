"""The import graph of `tala_ray/` follows the layers, and `tests/` never skips on the project's own modules.

A module imports only its own package or a lower layer (module-level, class-level and function-level
imports alike; `if TYPE_CHECKING:` imports too), no circle joins packages, and no circle joins the
modules of one package. The root `tala_ray/__init__.py` runs before every other module, so it
imports none of them.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "tala_ray"
ROOT_INIT = "__init__"  # the package of `tala_ray/__init__.py` (and of `import tala_ray`)
LAYERS = (
    ROOT_INIT,
    "core",
    "data",
    "features",
    "policy",
    "models",
    "evaluation",
    "tuning",
    "monitoring",
    "streaming",
    "serving",
    "traffic",
    "jobs",
    "commands",
    "cli",
)
RANK = {name: rank for rank, name in enumerate(LAYERS)}


@dataclass(frozen=True)
class Source:
    """One module's text, where it came from, and whether it is a package's `__init__`."""

    text: str
    path: str
    is_package: bool = False


@dataclass(frozen=True)
class Import:
    """`source` imports `target` (both dotted module names) at `path:line`; `kind`: module, function, type-checking."""

    source: str
    target: str
    path: str
    line: int
    kind: str

    def where(self) -> str:
        return f"{self.path}:{self.line} ({self.kind}) imports {self.target}"


def package_of(module: str) -> str:
    """`tala_ray.models.credit` -> `models`; `tala_ray.cli` -> `cli`; `tala_ray` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT_INIT


def project_sources(root: Path = ROOT) -> dict[str, Source]:
    """Every module under `tala_ray/`, by dotted name."""
    sources = {}
    for path in sorted((root / PROJECT).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        sources[name] = Source(path.read_text(), str(path.relative_to(root)), is_package)
    return sources


def _is_project(name: str) -> bool:
    return name == PROJECT or name.startswith(PROJECT + ".")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector(ast.NodeVisitor):
    """The project imports of one module: import statements and `importlib.import_module("tala_ray...")`."""

    def __init__(self, module: str, source: Source, known: set[str]) -> None:
        self.module, self.source, self.known = module, source, known
        self.kinds = ["module"]
        self.found: list[Import] = []

    def _add(self, target: str, node: ast.AST) -> None:
        if _is_project(target):
            self.found.append(Import(self.module, target, self.source.path, node.lineno, self.kinds[-1]))

    def _nested(self, node: ast.AST, kind: str) -> None:
        self.kinds.append(kind)
        self.generic_visit(node)
        self.kinds.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:  # noqa: N802 - ast's visitor names
        self._nested(node, "function")

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:  # noqa: N802
        self._nested(node, "function")

    def visit_Lambda(self, node: ast.Lambda) -> None:  # noqa: N802
        self._nested(node, "function")

    def visit_If(self, node: ast.If) -> None:  # noqa: N802
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.kinds.append("type-checking")
        for child in node.body:
            self.visit(child)
        self.kinds.pop()
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        if node.level:
            base = self.module.split(".")
            base = base[: len(base) - node.level + (1 if self.source.is_package else 0)]
            prefix = ".".join([*base, *([node.module] if node.module else [])])
        else:
            prefix = node.module or ""
        targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in self.known else prefix for a in node.names]
        for target in dict.fromkeys(targets):  # `from m import a, b` is one import of m
            self._add(target, node)

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                self._add(first.value, node)
        self.generic_visit(node)


def collect_imports(sources: dict[str, Source]) -> list[Import]:
    """Every import of a project module by a project module, with where and at which level it sits."""
    known = set(sources)
    found: list[Import] = []
    for module, source in sources.items():
        collector = _Collector(module, source, known)
        collector.visit(ast.parse(source.text, filename=source.path))
        found += collector.found
    return found


def unplaced_packages(sources: dict[str, Source]) -> list[str]:
    """Modules whose package is not in the layer order (e.g. a new module at the package root)."""
    return [f"{s.path}: package {package_of(m)!r} is not in the layer order" for m, s in sources.items()
            if package_of(m) not in RANK]  # fmt: skip


def upward_imports(imports: Iterable[Import]) -> list[str]:
    """Imports of a higher layer than the importing module's own."""
    problems = []
    for found in imports:
        low, high = package_of(found.source), package_of(found.target)
        if low in RANK and high in RANK and RANK[high] > RANK[low]:
            problems.append(f"{low} -> {high}: {found.where()}")
    return sorted(problems)


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(components)


def _circles(imports: list[Import], node_of) -> list[str]:
    """Circles of the graph whose nodes are `node_of(module)`, each with the imports that close it."""
    by_edge: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for found in imports:
        a, b = node_of(found.source), node_of(found.target)
        if a != b:
            by_edge[a, b].append(found)
    edges: dict[str, set[str]] = defaultdict(set)
    for a, b in by_edge:
        edges[a].add(b)
    lines = []
    for component in _strongly_connected(edges):
        members = set(component)
        lines.append("circle: " + ", ".join(component))
        for (a, b), found in sorted(by_edge.items()):
            if a in members and b in members:
                lines.append(f"    {a} -> {b} ({len(found)} imports), e.g. {found[0].where()}")
    return lines


def package_circles(imports: list[Import]) -> list[str]:
    """Circles between packages."""
    return _circles(imports, package_of)


def module_circles(imports: list[Import]) -> list[str]:
    """Circles between the modules of one package, through imports that run (module and function level;
    an `if TYPE_CHECKING:` import for annotations never runs, so it closes no circle inside a package)."""
    inside = [
        found
        for found in imports
        if package_of(found.source) == package_of(found.target) and found.kind != "type-checking"
    ]
    return _circles(inside, lambda module: module)


def _synthetic(modules: dict[str, str]) -> dict[str, Source]:
    return {name: Source(text, name.replace(".", "/") + ".py") for name, text in modules.items()}


def test_the_checker_flags_planted_upward_imports_and_circles() -> None:
    sources = _synthetic(
        {
            "tala_ray.core.a": "from tala_ray.core import b\n",
            "tala_ray.core.b": "import tala_ray.core.a\n",
            "tala_ray.data.c": "def f():\n    from tala_ray.jobs.d import x\n",
            "tala_ray.jobs.d": "from tala_ray.data import c\nfrom tala_ray.core.a import thing\n",
            "tala_ray.misc": "import importlib\nimportlib.import_module('tala_ray.core.a')\n",
        }
    )
    imports = collect_imports(sources)
    assert upward_imports(imports) == ["data -> jobs: tala_ray/data/c.py:2 (function) imports tala_ray.jobs.d"]
    circles = package_circles(imports)
    assert circles[0] == "circle: data, jobs" and len(circles) == 3, circles
    assert module_circles(imports)[0] == "circle: tala_ray.core.a, tala_ray.core.b"
    assert unplaced_packages(sources) == ["tala_ray/misc.py: package 'misc' is not in the layer order"]
    relative = {
        "tala_ray.serving": Source("from . import x\n", "tala_ray/serving/__init__.py", is_package=True),
        "tala_ray.serving.x": Source("from ..cli import main\n", "tala_ray/serving/x.py"),
        "tala_ray.cli": Source("", "tala_ray/cli.py"),
    }
    assert [f.target for f in collect_imports(relative)] == ["tala_ray.serving.x", "tala_ray.cli"]
    typed = _synthetic({"tala_ray.core.e": "if TYPE_CHECKING:\n    from tala_ray.models import m\n"})
    assert upward_imports(collect_imports(typed)) == [
        "core -> models: tala_ray/core/e.py:2 (type-checking) imports tala_ray.models"
    ]


def test_every_package_is_in_the_layer_order() -> None:
    problems = unplaced_packages(project_sources())
    assert not problems, "\n".join(problems)


def test_no_module_imports_a_higher_layer() -> None:
    problems = upward_imports(collect_imports(project_sources()))
    assert not problems, f"{len(problems)} upward imports (order: {' < '.join(LAYERS)}):\n" + "\n".join(problems)


def test_no_import_circle_between_packages() -> None:
    problems = package_circles(collect_imports(project_sources()))
    assert not problems, "\n".join(problems)


def test_no_import_circle_between_modules_of_a_package() -> None:
    problems = module_circles(collect_imports(project_sources()))
    assert not problems, "\n".join(problems)


def _importorskip_of_project(path: Path) -> list[str]:
    """`pytest.importorskip` calls of a test file that name (or may name) a project module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    loop_values: dict[str, list[object]] = defaultdict(list)  # names bound by `for name in (literals)`
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.For)
            and isinstance(node.target, ast.Name)
            and isinstance(node.iter, ast.Tuple | ast.List)
        ):
            loop_values[node.target.id] += [e.value if isinstance(e, ast.Constant) else None for e in node.iter.elts]
    problems = []
    for node in sorted(ast.walk(tree), key=lambda node: getattr(node, "lineno", 0)):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        if (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)) != "importorskip":
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant):
            names: list[object] = [first.value]
        else:
            names = loop_values.get(first.id, [None]) if isinstance(first, ast.Name) else [None]
        if any(not isinstance(name, str) or _is_project(name) for name in names):
            shown = ", ".join(repr(name) if isinstance(name, str) else "an unknown module" for name in names)
            problems.append(f"{path.relative_to(path.parents[1])}:{node.lineno} importorskip of {shown}")
    return problems


def test_the_importorskip_check_flags_project_modules(tmp_path: Path) -> None:
    planted = tmp_path / "tests" / "test_planted.py"
    planted.parent.mkdir()
    planted.write_text(
        "import pytest\n"
        "pytest.importorskip('pyarrow')\n"
        "for _m in ('tala_ray.serving.app', 'httpx'):\n"
        "    pytest.importorskip(_m)\n"
        "pytest.importorskip('tala_ray.core')\n"
    )
    assert _importorskip_of_project(planted) == [
        "tests/test_planted.py:4 importorskip of 'tala_ray.serving.app', 'httpx'",
        "tests/test_planted.py:5 importorskip of 'tala_ray.core'",
    ]


def test_tests_never_skip_on_the_project_modules() -> None:
    """A broken import of the project must fail its tests, not skip them."""
    problems = [line for path in sorted((ROOT / "tests").glob("**/*.py")) for line in _importorskip_of_project(path)]
    assert not problems, "\n".join(problems)
