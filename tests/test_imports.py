"""Imports inside the convbench package run one way, stage after stage: a module imports only from its
own sub-package or from those of earlier stages, and no import chain comes back to where it started.
A helper two stages share lives below both."""

import ast
import functools
import importlib
import importlib.util

import package
import pytest
from conftest import PROJECT

# The sub-packages, lowest first; the rule files whose code each holds are named in its docstring.
STAGES = ("base", "data", "models", "evaluate", "train", "tune", "report", "deploy")
TOP = ("convbench", "convbench.cli")  # the package itself and the `convbench` command reach every stage


def stage_of(module):
    """The index of a module's stage; the top-level modules sit above every stage."""
    return len(STAGES) if module in TOP else STAGES.index(module.split(".")[1])


@functools.cache  # one walk of the tree for all the parametrized checks
def graph(root=package.PACKAGE):
    return {module: package.package_imports(module, root) for module in package.modules(root)}


def test_every_module_belongs_to_a_stage():
    loose = [module for module in package.modules() if module not in TOP and module.split(".")[1] not in STAGES]
    assert not loose, f"put {loose} into one of the stage sub-packages {STAGES}"


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_says_what_it_does(stage):
    docstring = ast.get_docstring(ast.parse((package.PACKAGE / stage / "__init__.py").read_text()))
    assert docstring and len(docstring.split()) >= 20, f"convbench/{stage}/__init__.py: say what the stage does"


@pytest.mark.parametrize("module", sorted(package.modules()))
def test_imports_go_down_the_stages(module, root=package.PACKAGE):
    upward = {target for target in graph(root)[module] if stage_of(target) > stage_of(module)}
    assert not upward, f"{module} imports {sorted(upward)} from a later stage"


def test_no_import_cycles(root=package.PACKAGE):
    edges, state = graph(root), {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                raise AssertionError("import cycle: " + " -> ".join([*path, module, target]))
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in edges:
        if module not in state:
            visit(module, [])


def test_the_walk_sees_upward_imports_and_cycles(tmp_path):
    """The checks above can fail: a planted upward import (relative and by an old flat name) and a
    planted cycle are found."""
    root = tmp_path / "convbench"
    for stage in ("base", "report"):
        (root / stage).mkdir(parents=True)
        (root / stage / "__init__.py").write_text("")
    (root / "__init__.py").write_text('MOVED = {"build": ("report.build",)}\n')
    (root / "base" / "atomic.py").write_text("from ..report.build import build_report\n")
    (root / "base" / "style.py").write_text("def f():\n    from convbench.build import build_report\n")
    (root / "report" / "build.py").write_text("def f():\n    from ..base.atomic import write_json\n")
    assert graph(root)["convbench.base.atomic"] == {"convbench.report.build"}
    assert graph(root)["convbench.base.style"] == {"convbench.report.build"}
    with pytest.raises(AssertionError, match="later stage"):
        test_imports_go_down_the_stages("convbench.base.style", root)
    with pytest.raises(AssertionError, match="import cycle"):
        test_no_import_cycles(root)


def test_no_module_is_longer_than_a_reader_can_hold():
    long = {module: lines for module, path in package.modules().items()
            if (lines := len(path.read_text().splitlines())) > 420}
    assert not long, f"split these by what their parts do: {long}"


# ---------------------------------------------------------------- the flat names rule scripts import

def script_imports():
    """(file, module, name) of every `from convbench... import name` in the rule scripts and the notebook."""
    import json

    sources = {path.name: path.read_text() for path in (PROJECT / "workflow" / "scripts").glob("*.py")}
    notebook = json.loads((PROJECT / "workflow" / "notebooks" / "report.ipynb").read_text())
    code = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    sources["report.ipynb"] = "\n".join(code)
    for file, source in sorted(sources.items()):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("convbench"):
                yield from ((file, node.module, alias.name) for alias in node.names)


@pytest.mark.parametrize("file, module, name", list(script_imports()))
def test_what_the_rule_scripts_import_is_there(file, module, name):
    """The rule scripts keep the flat module names (convbench.MOVED says why): each still resolves."""
    found = hasattr(importlib.import_module(module), name) or importlib.util.find_spec(f"{module}.{name}")
    assert found, f"{file}: {module} has no {name}"


def test_old_names_are_the_same_objects_as_the_new_ones():
    from convbench.architectures import load_model as old_load
    from convbench.fetch import fetch_file, imagenet_weights_sources
    from convbench.models.saving import load_model

    assert old_load is load_model
    assert fetch_file.__module__ == "convbench.data.fetch"
    assert imagenet_weights_sources.__module__ == "convbench.models.weights"
    assert set(package.moved()) == set(importlib.import_module("convbench").MOVED)
    for old, homes in package.moved().items():
        for home in homes:
            assert f"convbench.{home}" in package.modules(), f"MOVED[{old!r}] names {home}, which does not exist"
