"""The architecture as a test: data flow one way through the layers of `src/lesde`.

model → simulate → estimate → analysis → data → store → rundir → train → plots →
experiments (config, stages, summary, driver) → figures / report → studies (each
experiment end to end: pipeline, figures, report) → CLI. A package (a folder) is one
floor, so the folder tree shows the architecture. Every import, at module level or inside
a function, goes to the same or a lower layer, the module graph has no circle, and a file
over 500 lines says at its top why it is long.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "lesde"

# lowest first; a module's layer is that of its longest matching prefix
LAYERS: list[list[str]] = [
    ["lesde", "lesde._validation", "lesde._progress", "lesde.model", "lesde.closed_form"],
    ["lesde.simulate"],
    ["lesde.estimate"],
    ["lesde.analysis"],
    ["lesde.forecasting"],
    ["lesde.data"],
    ["lesde.store"],
    ["lesde.rundir"],
    ["lesde.train"],
    ["lesde.plots"],
    # the experiment machinery: options, pure stages, the summary, the resumable driver
    ["lesde.experiments"],
    ["lesde.figures", "lesde.report", "lesde.report_paper"],
    # one floor above figures and report: every experiment end to end, composed
    ["lesde.studies", "lesde.sweep"],
    ["lesde.commands", "lesde.cli"],
]


def _modules() -> dict[str, Path]:
    out = {}
    for f in SRC.rglob("*.py"):
        parts = f.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    return _imports_of(ast.parse(path.read_text(encoding="utf-8")))


def _imports_of(tree: ast.AST) -> set[str]:
    """Every lesde module imported anywhere in ``tree``: module level, or inside function
    bodies, branches and ``try`` blocks (`ast.walk` visits every node)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lesde"):
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lesde")}
    return found


def _layer(module: str) -> int:
    best, depth = None, -1
    for i, names in enumerate(LAYERS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > depth:
                best, depth = i, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


GRAPH = {m: _imports(p) for m, p in MODULES.items()}


def test_every_import_goes_down_or_sideways():
    bad = [
        f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
        for m, targets in GRAPH.items()
        for t in targets
        if t in MODULES and _layer(t) > _layer(m)
    ]
    assert not bad, "\n".join(bad)


def test_no_circle_in_the_module_graph():
    # the package roots only re-export (lazily or for the type checker); their edges to
    # their own submodules are not dependencies
    edges = {m: {t for t in ts if t in MODULES and not m == t and not
                 (MODULES[m].name == "__init__.py" and t.startswith(m + "."))}
             for m, ts in GRAPH.items()}  # fmt: skip
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t) :] + [t]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_imports_inside_functions_are_counted():
    # a composition hidden in a function body (``def f(): from lesde.report import ...``)
    # is a dependency like any other: the walk must see it
    tree = ast.parse("def f():\n    if True:\n        from lesde.report import write_report\n")
    assert "lesde.report" in _imports_of(tree)
    lazy = {m: ts for m, ts in GRAPH.items() if "lesde.figures" in ts}
    assert "lesde.studies.runner" in lazy  # its figure import sits inside run_single


def test_a_package_is_one_floor():
    # every module of a sub-package sits on its package's floor: a module that composes
    # a higher floor lives in a higher package, not beside the machinery it builds on
    bad = [
        f"{m} (layer {_layer(m)}) is in package {m.rsplit('.', 1)[0]} (layer "
        f"{_layer(m.rsplit('.', 1)[0])})"
        for m in MODULES
        if m.count(".") >= 2 and _layer(m) != _layer(m.rsplit(".", 1)[0])
    ]
    assert not bad, "\n".join(bad)


def test_the_layers_know_every_module():
    for m in MODULES:
        _layer(m)


def test_long_files_say_why():
    # STYLE: modules of one concept and a few hundred lines; a longer one states why
    for p in MODULES.values():
        text = p.read_text(encoding="utf-8")
        if text.count("\n") > 500:
            head = "\n".join(text.splitlines()[:40])
            assert "Why this file is long:" in head, f"{p} has {text.count(chr(10))} lines"
