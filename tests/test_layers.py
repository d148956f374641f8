"""The package map, enforced: layers, no package cycles, no reaching into another package's
private modules, no function-level imports of tidekit, and size limits (issue #33).

The checker reads every module under ``src/tidekit`` with :mod:`ast` (nothing is imported), so
it is fast and sees imports inside functions and ``TYPE_CHECKING`` blocks too. ``LAYERS`` is the
one statement of the layer order (docs/developing.md describes it): a package may import its
own layer and the layers below it, never one above. Names meant for other packages are
re-exported from a package's ``__init__`` (or a public module) and imported from there.

The allow-lists below name what is known and not yet fixed, each with its reason; an entry
that no longer matches anything fails the test, so the lists can only shrink.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. "tidekit" stands for the top-level modules (errors, _io, _config, _layout,
# _manifest, _tracking, _stage, _stats, _version); the package root ``tidekit/__init__`` is the
# public API that re-exports every stage and sits on top with the CLI.
LAYERS: list[tuple[str, frozenset[str]]] = [
    ("base", frozenset({"tidekit"})),
    ("schema", frozenset({"data"})),
    ("domain", frozenset({"scenarios", "personas", "safety", "backends", "sample"})),
    ("engine", frozenset({"generation"})),
    ("stages", frozenset({"builder", "finetuning", "metrics", "scorer", "rating"})),
    ("analysis", frozenset({"analysis"})),
    ("reporting", frozenset({"reporting"})),
    ("apps", frozenset({"serve", "study"})),
    ("cli", frozenset({"cli", "<api>"})),
]
# top-level modules that belong to a package's unit: the reference-doc generator renders the CLI
# (``make docs``) and ``python -m tidekit`` runs it
UNIT_OF_MODULE = {"_refdocs": "cli", "__main__": "cli"}
LAYER_OF = {pkg: i for i, (_, pkgs) in enumerate(LAYERS) for pkg in pkgs}

MAX_FUNCTION_LINES = 120
MAX_MODULE_LINES = 600

# (importing module, imported module) pairs known to break a rule, with why they stay for now.
# Private modules of another package still imported: names that are private on purpose
# (underscore names) or that sit in files other sessions edit now.
_TORCH = ("backends._hf imports torch: re-exporting its helpers from tidekit.backends would load torch on "
          "every import of the package; a torch-free home for them is the fix")
PRIVATE_ALLOWED: dict[tuple[str, str], str] = {
    ("tidekit.cli._data", "tidekit.finetuning._train"): "a private helper (underscore name or internal token maker), not part of the package API yet",
    ("tidekit.cli._rate", "tidekit.rating._security"): "a private helper (underscore name or internal token maker), not part of the package API yet",
    ("tidekit.finetuning._examples", "tidekit.backends._hf"): _TORCH,
    ("tidekit.finetuning._preflight", "tidekit.backends._hf"): _TORCH,
    ("tidekit.finetuning._train", "tidekit.backends._hf"): _TORCH,
    ("tidekit.scorer._train", "tidekit.backends._hf"): _TORCH,
}

# Function-level imports of tidekit modules still present (rule d). Each group's reason:
_CLI_LAZY = "CLI command: imports its stage when run, so `tidekit --help` need not load every stage"
_LAZY_SIBLING = "lazy import of a sibling module in the same package (kept: may break an import cycle)"
_NOT_HOISTED = "not hoisted yet (issue #33 point 1d): move to the module top after an import-time check"
FUNCTION_IMPORT_ALLOWED: dict[tuple[str, str], str] = {
    ("tidekit.backends._hf", "tidekit.backends._constrain"): _LAZY_SIBLING,
    ("tidekit.backends._hf", "tidekit.backends._lean"): _LAZY_SIBLING,
    ("tidekit.backends._vllm", "tidekit.backends._hf"): _LAZY_SIBLING,
    ("tidekit.backends._vllm", "tidekit.backends._openai"): _LAZY_SIBLING,
    ("tidekit.backends._vllm", "tidekit.backends._registry"): _LAZY_SIBLING,
    ("tidekit.backends._vllm", "tidekit.data"): _NOT_HOISTED,
    ("tidekit.serve._app", "tidekit.serve._routes"): _LAZY_SIBLING,
    ("tidekit.serve._routes", "tidekit.serve._app"): _LAZY_SIBLING,
    ("tidekit.serve._run", "tidekit.serve._app"): _LAZY_SIBLING,
    ("tidekit._refdocs", "tidekit._io"): _CLI_LAZY,
    ("tidekit._refdocs", "tidekit.backends"): _CLI_LAZY,
    ("tidekit._refdocs", "tidekit.cli"): _CLI_LAZY,
    ("tidekit.cli._analyze", "tidekit._config"): _CLI_LAZY,
    ("tidekit.cli._analyze", "tidekit.analysis"): _CLI_LAZY,
    ("tidekit.cli._analyze", "tidekit.errors"): _CLI_LAZY,
    ("tidekit.cli._build", "tidekit._config"): _CLI_LAZY,
    ("tidekit.cli._build", "tidekit.builder"): _CLI_LAZY,
    ("tidekit.cli._data", "tidekit._manifest"): _CLI_LAZY,
    ("tidekit.cli._data", "tidekit.backends"): _CLI_LAZY,
    ("tidekit.cli._data", "tidekit.data"): _CLI_LAZY,
    ("tidekit.cli._data", "tidekit.errors"): _CLI_LAZY,
    ("tidekit.cli._data", "tidekit.finetuning"): _CLI_LAZY,
    ("tidekit.cli._data", "tidekit.finetuning._train"): _CLI_LAZY,
    ("tidekit.cli._finetune", "tidekit._config"): _CLI_LAZY,
    ("tidekit.cli._finetune", "tidekit.analysis"): _CLI_LAZY,
    ("tidekit.cli._finetune", "tidekit.finetuning"): _CLI_LAZY,
    ("tidekit.cli._generate", "tidekit._config"): _CLI_LAZY,
    ("tidekit.cli._generate", "tidekit.generation"): _CLI_LAZY,
    ("tidekit.cli._jsondocs", "tidekit._io"): _CLI_LAZY,
    ("tidekit.cli._jsondocs", "tidekit._refdocs"): _CLI_LAZY,
    ("tidekit.cli._judge", "tidekit._config"): _CLI_LAZY,
    ("tidekit.cli._judge", "tidekit.metrics"): _CLI_LAZY,
    ("tidekit.cli._models", "tidekit.backends"): _CLI_LAZY,
    ("tidekit.cli._personas", "tidekit._config"): _CLI_LAZY,
    ("tidekit.cli._personas", "tidekit.personas"): _CLI_LAZY,
    ("tidekit.cli._rate", "tidekit._config"): _CLI_LAZY,
    ("tidekit.cli._rate", "tidekit.rating"): _CLI_LAZY,
    ("tidekit.cli._rate", "tidekit.rating._security"): _CLI_LAZY,
    ("tidekit.cli._report", "tidekit.reporting"): _CLI_LAZY,
    ("tidekit.cli._run", "tidekit.cli._common"): _CLI_LAZY,
    ("tidekit.cli._run", "tidekit.study"): _CLI_LAZY,
    ("tidekit.cli._score", "tidekit._config"): _CLI_LAZY,
    ("tidekit.cli._score", "tidekit.metrics"): _CLI_LAZY,
    ("tidekit.cli._scorer", "tidekit._config"): _CLI_LAZY,
    ("tidekit.cli._scorer", "tidekit.scorer"): _CLI_LAZY,
    ("tidekit.cli._serve", "tidekit._config"): _CLI_LAZY,
    ("tidekit.cli._serve", "tidekit.serve"): _CLI_LAZY,
    ("tidekit.analysis._agreement", "tidekit.analysis._design"): _LAZY_SIBLING,
    ("tidekit.analysis._analyze", "tidekit.analysis._metric_human"): _LAZY_SIBLING,
    ("tidekit.analysis._analyze", "tidekit.analysis._ratings"): _LAZY_SIBLING,
    ("tidekit.analysis._calibration", "tidekit.analysis._analyze"): _LAZY_SIBLING,
    ("tidekit.analysis._calibration", "tidekit.analysis._compare"): _LAZY_SIBLING,
    ("tidekit.analysis._calibration", "tidekit.analysis._ppi_analysis"): _LAZY_SIBLING,
    ("tidekit.analysis._calibration", "tidekit.analysis._ratings"): _LAZY_SIBLING,
    ("tidekit.analysis._calibration", "tidekit.analysis._simulate"): _LAZY_SIBLING,
    ("tidekit.analysis._ceiling", "tidekit.analysis._metric_human"): _LAZY_SIBLING,
    ("tidekit.analysis._compare", "tidekit.analysis._ordinal"): _LAZY_SIBLING,
    ("tidekit.analysis._demographics", "tidekit.analysis._compare"): _LAZY_SIBLING,
    ("tidekit.analysis._demographics", "tidekit.analysis._ordinal"): _LAZY_SIBLING,
    ("tidekit.analysis._ppi_analysis", "tidekit.analysis._metric_human"): _LAZY_SIBLING,
    ("tidekit.analysis._ppi_analysis", "tidekit.analysis._power"): _LAZY_SIBLING,
    ("tidekit.analysis._steps", "tidekit.analysis._agreement"): _LAZY_SIBLING,
    ("tidekit.analysis._steps", "tidekit.analysis._compare"): _LAZY_SIBLING,
    ("tidekit.analysis._steps", "tidekit.analysis._demographics"): _LAZY_SIBLING,
    ("tidekit.analysis._steps", "tidekit.analysis._metric_human"): _LAZY_SIBLING,
    ("tidekit.analysis._steps", "tidekit.analysis._power"): _LAZY_SIBLING,
    ("tidekit.analysis._steps", "tidekit.analysis._ppi_analysis"): _LAZY_SIBLING,
    ("tidekit.data._hf", "tidekit.data._chat"): _LAZY_SIBLING,
    ("tidekit.data._hf", "tidekit.data._flat"): _LAZY_SIBLING,
    ("tidekit.data._load", "tidekit.data._chat"): _LAZY_SIBLING,
    ("tidekit.data._load", "tidekit.data._hf"): _LAZY_SIBLING,
    ("tidekit.data._load", "tidekit.data._table"): _LAZY_SIBLING,
    ("tidekit.data._load", "tidekit.data._tide"): _LAZY_SIBLING,
    ("tidekit.finetuning._merge", "tidekit.finetuning._card"): _LAZY_SIBLING,
    ("tidekit.finetuning._train", "tidekit.finetuning._card"): _LAZY_SIBLING,
    ("tidekit.finetuning._train", "tidekit.finetuning._examples"): _LAZY_SIBLING,
    ("tidekit.finetuning._train", "tidekit.finetuning._frozen"): _LAZY_SIBLING,
    ("tidekit.finetuning._train", "tidekit.finetuning._metrics"): _LAZY_SIBLING,
    ("tidekit.finetuning._train", "tidekit.finetuning._preflight"): _LAZY_SIBLING,
    ("tidekit.generation._dataset", "tidekit.generation._cache"): _LAZY_SIBLING,
    ("tidekit.generation._dataset", "tidekit.generation._engine"): _LAZY_SIBLING,
    ("tidekit.metrics._score", "tidekit.metrics._bootstrap"): _LAZY_SIBLING,
    ("tidekit.metrics._score", "tidekit.metrics._compare"): _LAZY_SIBLING,
    ("tidekit.metrics._scorers", "tidekit.metrics._compare"): _LAZY_SIBLING,
    ("tidekit.metrics._scorers", "tidekit.metrics._learned"): _LAZY_SIBLING,
    ("tidekit.metrics._validate", "tidekit.metrics._judge"): _LAZY_SIBLING,
    ("tidekit.metrics._validate", "tidekit.metrics._scorers"): _LAZY_SIBLING,
    ("tidekit.rating", "tidekit.rating"): _LAZY_SIBLING,
    ("tidekit.rating._config", "tidekit.rating._security"): _LAZY_SIBLING,
    ("tidekit.rating._simulate", "tidekit.rating"): _LAZY_SIBLING,
    ("tidekit.reporting._report", "tidekit.reporting._methods"): _LAZY_SIBLING,
    ("tidekit.reporting._report", "tidekit.reporting._screenshot"): _LAZY_SIBLING,
    ("tidekit.reporting._report", "tidekit.reporting._template"): _LAZY_SIBLING,
    ("tidekit.scorer._train", "tidekit.scorer._card"): _LAZY_SIBLING,
    ("tidekit.builder._build", "tidekit.backends"): _NOT_HOISTED,
    ("tidekit.finetuning._examples", "tidekit.backends._hf"): _NOT_HOISTED,
    ("tidekit.finetuning._preflight", "tidekit.backends._hf"): _NOT_HOISTED,
    ("tidekit.finetuning._train", "tidekit.backends"): _NOT_HOISTED,
    ("tidekit.finetuning._train", "tidekit.backends._hf"): _NOT_HOISTED,
    ("tidekit.reporting._figures", "tidekit.analysis"): _NOT_HOISTED,
    ("tidekit.reporting._report", "tidekit.analysis"): _NOT_HOISTED,
    ("tidekit.reporting._run", "tidekit.analysis"): _NOT_HOISTED,
    ("tidekit.reporting._run", "tidekit.data"): _NOT_HOISTED,
    ("tidekit.scorer._train", "tidekit._io"): _NOT_HOISTED,
    ("tidekit.scorer._train", "tidekit.backends._hf"): _NOT_HOISTED,
    ("tidekit.study._study", "tidekit._tracking"): _NOT_HOISTED,
}
LONG_FUNCTION_ALLOWED: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted (for ``from a import b``: ``a``, or ``a.b`` if a module)
    line: int
    in_function: bool


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_of(module: str, top_level_packages: frozenset[str]) -> str:
    """The layer unit of a tidekit module: its subpackage, "tidekit" for a top-level module,
    "<api>" for the package root, or the unit ``UNIT_OF_MODULE`` gives a top-level module."""
    parts = module.split(".")
    if len(parts) == 1:
        return "<api>"
    if parts[1] in UNIT_OF_MODULE:
        return UNIT_OF_MODULE[parts[1]]
    if parts[1] in top_level_packages or parts[1] in LAYER_OF:
        return parts[1]
    return "tidekit"


def imports_of(module: str, source: str, is_package: bool) -> list[Import]:
    tree = ast.parse(source)
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    in_function.add(id(inner))
    out: list[Import] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join([*here, *([node.module] if node.module else [])])
            targets = [base]
        for target in targets:
            if target == "tidekit" or target.startswith("tidekit."):
                out.append(Import(module, target, node.lineno, id(node) in in_function))
    return out


@dataclass(frozen=True)
class Problem:
    rule: str
    module: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.rule}: {self.target}"


def check(modules: dict[str, tuple[str, bool]], top_level_packages: frozenset[str]) -> list[Problem]:
    """Problems in ``modules`` (dotted name -> (source, is_package)): upward and private imports,
    function-level tidekit imports and package cycles (one problem per cycle edge)."""
    problems: list[Problem] = []
    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], Import] = {}
    for name, (source, is_package) in sorted(modules.items()):
        for imp in imports_of(name, source, is_package):
            src_pkg = package_of(imp.module, top_level_packages)
            dst_pkg = package_of(imp.target, top_level_packages)
            if imp.in_function:
                problems.append(Problem("function-level tidekit import", imp.module, imp.target, imp.line))
            if src_pkg == dst_pkg:
                continue
            graph[src_pkg].add(dst_pkg)
            where.setdefault((src_pkg, dst_pkg), imp)
            if LAYER_OF.get(dst_pkg, 0) > LAYER_OF.get(src_pkg, len(LAYERS)):
                problems.append(Problem(f"upward import ({src_pkg} -> {dst_pkg})", imp.module, imp.target, imp.line))
            private = [p for p in imp.target.split(".")[2:] if p.startswith("_")]
            if private and dst_pkg != "tidekit":
                problems.append(Problem("private module of another package", imp.module, imp.target, imp.line))
    for a, b in _cycle_edges(graph):
        imp = where[(a, b)]
        problems.append(Problem(f"package cycle ({a} -> {b} -> ... -> {a})", imp.module, imp.target, imp.line))
    return problems


def _cycle_edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Edges a -> b where b also reaches a (so a and b sit on one cycle)."""
    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen
    reachable = {node: reach(node) for node in list(graph)}
    return sorted((a, b) for a, bs in graph.items() for b in bs if a in reachable.get(b, set()))


def _tidekit_modules() -> tuple[dict[str, tuple[str, bool]], frozenset[str]]:
    root = SRC / "tidekit"
    modules = {module_name(p, SRC): (p.read_text(encoding="utf-8"), p.name == "__init__.py")
               for p in sorted(root.rglob("*.py"))}
    packages = frozenset(p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    return modules, packages


def _allowed(problem: Problem) -> bool:
    key = (problem.module, problem.target)
    if problem.rule == "function-level tidekit import":
        return key in FUNCTION_IMPORT_ALLOWED
    if problem.rule == "private module of another package":
        return key in PRIVATE_ALLOWED
    return False


def test_layers_private_modules_function_imports_and_cycles() -> None:
    modules, packages = _tidekit_modules()
    assert set(packages) <= set(LAYER_OF), f"packages missing from LAYERS: {sorted(set(packages) - set(LAYER_OF))}"
    problems = check(modules, packages)
    bad = [str(p) for p in problems if not _allowed(p)]
    assert not bad, "layer rules broken (see LAYERS in tests/test_layers.py):\n" + "\n".join(bad)
    used = {(p.module, p.target) for p in problems}
    stale = sorted(k for k in {**PRIVATE_ALLOWED, **FUNCTION_IMPORT_ALLOWED} if k not in used)
    assert not stale, f"allow-list entries that match nothing any more (delete them): {stale}"


def test_checker_reports_upward_private_function_level_imports_and_cycles() -> None:
    packages = frozenset({"data", "generation", "metrics", "reporting", "analysis", "rating"})
    modules = {
        "tidekit.metrics._score": ("from tidekit.reporting import write_tables\n", False),
        "tidekit.generation._dataset": ("from tidekit.data._schema import Split\n", False),
        "tidekit.data._load": ("def f():\n    from tidekit.data._chat import read\n", False),
        "tidekit.analysis._sim": ("from tidekit.rating import DEMOGRAPHICS\n", False),
        "tidekit.rating._sim": ("from ..analysis import RaterBehaviour\n", False),
        "tidekit.data._ok": ("from tidekit.errors import DataError\nfrom tidekit.data._schema import X\n", False),
    }
    found = {(p.rule.split(" (")[0], p.module, p.target) for p in check(modules, packages)}
    assert ("upward import", "tidekit.metrics._score", "tidekit.reporting") in found
    assert ("upward import", "tidekit.rating._sim", "tidekit.analysis") in found
    assert ("private module of another package", "tidekit.generation._dataset", "tidekit.data._schema") in found
    assert ("function-level tidekit import", "tidekit.data._load", "tidekit.data._chat") in found
    assert ("package cycle", "tidekit.analysis._sim", "tidekit.rating") in found
    assert not {f for f in found if f[1] == "tidekit.data._ok"}


def size_problems(modules: dict[str, tuple[str, bool]]) -> list[str]:
    """Modules over MAX_MODULE_LINES and functions over MAX_FUNCTION_LINES (``LONG_FUNCTION_ALLOWED`` aside)."""
    too_big: list[str] = []
    for name, (source, _) in sorted(modules.items()):
        n_lines = len(source.splitlines())
        if n_lines > MAX_MODULE_LINES:
            too_big.append(f"{name}: module of {n_lines} lines (limit {MAX_MODULE_LINES}): split it into siblings")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                key = f"{name}.{node.name}"
                if length > MAX_FUNCTION_LINES and key not in LONG_FUNCTION_ALLOWED:
                    too_big.append(f"{key}: function of {length} lines (limit {MAX_FUNCTION_LINES}): "
                                   "extract helpers")
    return too_big


def test_no_function_or_module_over_the_size_limits() -> None:
    modules, _ = _tidekit_modules()
    too_big = size_problems(modules)
    assert not too_big, "\n".join(too_big)


def test_size_check_reports_a_long_function_and_a_long_module() -> None:
    long_function = "def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES  # MAX + 1 lines with the def
    just_fits = "def g():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES - 1)
    long_module = "x = 1\n" * (MAX_MODULE_LINES + 1)
    found = size_problems({"tidekit.a": (long_function, False), "tidekit.b": (just_fits, False),
                           "tidekit.c": (long_module, False)})
    assert [p.split(":")[0] for p in found] == ["tidekit.a.f", "tidekit.c"]
