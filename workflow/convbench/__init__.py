"""convbench: train, evaluate and compare convolutional networks, one Snakemake rule per stage.

The sub-packages are the workflow's stages, lowest first; each imports only from those before it
(tests/test_imports.py): base (config, files, runtime) → data (workflow/rules/datasets.smk) → models
→ evaluate (evaluate.smk, render.smk) → train (train.smk) → tune (the search, in progress) → report
(report.smk) → deploy (export.smk, predict.smk, track.smk). `cli` (the `convbench` command) sits on top.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

# Where each module of the flat package lived before the stage sub-packages: {old name: new homes}.
# The rule scripts (workflow/scripts/) still import the old names, on purpose: Snakemake reruns every
# job whose script is newer than its outputs, so rewriting a script's imports would retrain every
# study made before the move. An old name is a module holding its homes' public names. A script
# that changes for its own reasons takes the new paths.
MOVED = {
    "atomic": ("base.atomic",), "config": ("base.config",), "devices": ("base.devices",),
    "job_errors": ("base.job_errors",), "runtime": ("base.runtime",), "schedules": ("base.schedules",),
    "style": ("base.style",), "validation": ("base.validation",), "vcs": ("base.vcs",),
    "catalog": ("data.catalog",), "datasets": ("data.datasets",), "fetch": ("data.fetch", "models.weights"),
    "formats": ("data.formats",), "prepared": ("data.prepared",),
    "anatomy": ("models.anatomy",), "architectures": ("models.architectures", "models.saving", "models.custom"),
    "fused_batchnorm": ("models.fused_batchnorm",), "layers": ("models.layers",), "study": ("models.study",),
    "transfer": ("models.transfer",),
    "assessment": ("evaluate.assessment",), "cost": ("evaluate.cost",), "evaluation": ("evaluate.evaluation",),
    "figures": ("evaluate.figures",), "inference": ("evaluate.inference",), "metrics": ("evaluate.metrics",),
    "visualization": ("evaluate.visualization",),
    "checkpoints": ("train.checkpoints",), "tensorboard_log": ("train.tensorboard_log",),
    "training": ("train.training",),
    "summary": ("report.summary",),
    "export": ("deploy.export",), "mlflow_log": ("deploy.mlflow_log",), "predict": ("deploy.predict",),
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `convbench.<old name>` as a module holding the public names of its new homes."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.partition(".")
        if package == __name__ and name in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None  # a plain module

    def exec_module(self, module):
        for home in MOVED[module.__name__.partition(".")[2]]:
            public = vars(importlib.import_module(f"{__name__}.{home}"))
            module.__dict__.update({key: value for key, value in public.items() if not key.startswith("__")})


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())
