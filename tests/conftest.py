import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def digits_raw(tmp_path_factory):
    from convbench.datasets import export_digits

    path = tmp_path_factory.mktemp("raw") / "digits.npz"
    export_digits(path)
    return path


@pytest.fixture(scope="session")
def digits_prepared(tmp_path_factory, digits_raw):
    """digits prepared at 28x28x1, as the workflow prepares it by default."""
    from convbench.datasets import load_prepared, prepare_dataset

    out = tmp_path_factory.mktemp("prepared")
    prepare_dataset(
        "digits", [digits_raw], "28x28x1", out / "d.npz", out / "d.json",
        split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="unit",
    )
    return load_prepared(out / "d.npz", out / "d.json")


def copy_workflow(destination):
    """The workflow as a user has it after cloning: Snakefile, config, workflow/, envs/, profiles/."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(PROJECT / name, destination / name)
    for name in ("workflow", "envs", "profiles"):
        shutil.copytree(PROJECT / name, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
    return destination
