"""The architecture as a test: data flow one way through the layers of `src/lesde`.

model → simulate → estimate → analysis → data → store → rundir → train → plots →
experiments (config, stages, driver) → figures / report → runner, experiments → CLI.
Every import (module level or inside a function) goes to the same or a lower layer, the
module graph has no circle, and a file over 500 lines says at its top why it is long.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "lesde"

# lowest first; a module's layer is that of its longest matching prefix
LAYERS: list[list[str]] = [
    ["lesde", "lesde._validation", "lesde.model", "lesde.closed_form"],
    ["lesde.simulate"],
    ["lesde.estimate"],
    ["lesde.analysis"],
    ["lesde.forecasting"],
    ["lesde.data"],
    ["lesde.store"],
    ["lesde.rundir"],
    ["lesde.train"],
    ["lesde.plots"],
    [  # the experiment machinery: options, pure stages, the resumable driver, sweeps
        "lesde.experiments",
        "lesde.experiments.config",
        "lesde.experiments.synthetic",
        "lesde.experiments.stages",
        "lesde.experiments.headline",
        "lesde.experiments.forecast",
        "lesde.experiments.pipeline",
        "lesde.experiments.separation",
        "lesde.experiments.collapse",
        "lesde.experiments.registry",
    ],  # fmt: skip
    ["lesde.figures", "lesde.report", "lesde.report_paper"],
    [  # one floor above figures and report: end-to-end runs
        "lesde.experiments.runner",
        "lesde.experiments.geomnist",
        "lesde.experiments.label_noise",
        "lesde.experiments.sample_size",
        "lesde.experiments.cifar",
        "lesde.experiments.digits",
        "lesde.sweep",
        "lesde.experiments.analyse",
        "lesde.experiments.paper",
    ],  # fmt: skip
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
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
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
