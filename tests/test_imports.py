"""Imports inside the convbench package run one way, stage after stage: a module imports only
modules of lower layers (or its own layer, without a cycle). A helper two stages share lives below both.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "workflow" / "convbench"

# Lowest first. A new module goes into the lowest layer its imports allow.
LAYERS = (
    # foundations: files, the config, runtime set-up, the tables of formats, metrics and layers
    {"atomic", "job_errors", "style", "vcs", "devices", "runtime", "config", "formats", "layers", "fused_batchnorm",
     "schedules", "metrics", "figures", "tensorboard_log"},
    {"validation"},  # parse-time checks of the config
    {"catalog"},  # what each dataset is, read when the workflow is parsed
    {"prepared"},  # the prepared-data format and its reader, which preparation writes and every later stage reads
    {"datasets"},  # preparation
    {"inference"},  # the tf.data pipeline and forward pass shared by training, evaluation, figures, prediction
    {"architectures"},  # the models
    {"transfer"},  # ImageNet bases built on the models
    {"study"},  # a study's architectures, resolved from its config
    {"fetch"},  # downloads: datasets and transfer weights
    {"anatomy"},  # a model's layers, receptive fields, its first convolution by hand
    {"checkpoints"},  # resuming a killed training run
    {"training"},
    {"evaluation", "cost", "export"},
    {"visualization"},
    {"assessment"},  # the evaluate stage as one call, and the training job's staged copy of it
    {"predict"},
    {"summary", "mlflow_log"},
    {"report"},
    {"cli"},
)
LAYER = {module: index for index, layer in enumerate(LAYERS) for module in layer}


def package_imports(path):
    """The convbench modules `path` imports, at any depth (imports inside functions count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from .x import y / from . import x
                found |= {node.module} if node.module else {alias.name for alias in node.names}
            elif node.module and node.module.split(".")[0] == "convbench":
                parts = node.module.split(".")
                found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("convbench.")}
    return found


def modules():
    return sorted(path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__")


def graph():
    return {module: package_imports(PACKAGE / f"{module}.py") for module in modules()}


def test_every_module_has_a_layer():
    assert set(modules()) <= set(LAYER), f"place {sorted(set(modules()) - set(LAYER))} in LAYERS"


@pytest.mark.parametrize("module", modules())
def test_imports_go_down_the_stages(module):
    upward = {target for target in graph()[module] if LAYER[target] > LAYER[module]}
    assert not upward, f"convbench.{module} imports {sorted(upward)} from a later stage"


def test_no_import_cycles():
    edges, state = graph(), {}

    def visit(module, path):
        state[module] = "open"
        for target in edges[module]:
            if state.get(target) == "open":
                raise AssertionError("import cycle: " + " -> ".join([*path, module, target]))
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in edges:
        if module not in state:
            visit(module, [])


def test_the_walk_sees_upward_imports_and_cycles(tmp_path, monkeypatch):
    """The checks above can fail: a planted upward import and a planted cycle are found."""
    (tmp_path / "atomic.py").write_text("from .report import build_report\n")
    (tmp_path / "report.py").write_text("def f():\n    from convbench.atomic import write_json\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path)
    assert graph() == {"atomic": {"report"}, "report": {"atomic"}}
    with pytest.raises(AssertionError, match="later stage"):
        test_imports_go_down_the_stages("atomic")
    with pytest.raises(AssertionError, match="import cycle"):
        test_no_import_cycles()
