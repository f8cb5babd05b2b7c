import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROJECT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items):
    """End-to-end tests are slow by nature: `pytest -m "not slow"` is the unit tier (CONTRIBUTING.md)."""
    for item in items:
        if item.get_closest_marker("integration") or item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def digits_raw(tmp_path_factory):
    from convbench.data.datasets import export_digits

    path = tmp_path_factory.mktemp("raw") / "digits.npz"
    export_digits(path)
    return path


@pytest.fixture(scope="session")
def digits_prepared(tmp_path_factory, digits_raw):
    """digits prepared at 28x28x1, as the workflow prepares it by default."""
    from convbench.data.datasets import prepare_dataset
    from convbench.data.prepared import load_prepared

    out = tmp_path_factory.mktemp("prepared")
    prepare_dataset(
        "digits", [digits_raw], "28x28x1", out / "d", out / "d.json",
        split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="unit",
    )
    return load_prepared(out / "d", out / "d.json")


def write_arrays(directory, arrays, *, class_names, scaling="unit", dataset="synthetic"):
    """Prepared data (convbench.data.prepared) written from in-memory arrays x_<split>, y_<split>."""
    from convbench.data.datasets import write_prepared
    from convbench.data.prepared import SPLITS, load_prepared

    manifest = {"dataset": dataset, "source_sha256": {}, "class_names": class_names, "num_classes": len(class_names),
                "input_shape": list(arrays["x_train"].shape[1:]), "preprocessing": {"scaling": scaling}}
    splits = {split: (arrays[f"y_{split}"], [arrays[f"x_{split}"]]) for split in SPLITS}
    write_prepared(directory, f"{directory}.json", splits, manifest)
    return load_prepared(directory, f"{directory}.json")


def copy_workflow(destination):
    """The workflow as a user has it after cloning: Snakefile, config, the lock, workflow/, envs/, profiles/."""
    for name in ("Snakefile", "config.yaml", "requirements.lock"):
        shutil.copy(PROJECT / name, destination / name)
    for name in ("workflow", "envs", "profiles"):
        shutil.copytree(PROJECT / name, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


# The tiny study of the end-to-end tests: both architectures, a few epochs.
TINY = ["training={epochs: 3}", "render={feature_map_images: 2}"]


def run_snakemake(workdir, *args, config=(), env=None, timeout=1200, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args, "--config", *TINY, *config],
        cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def planned_jobs(output):
    """{rule: count} from a dry run's job stats table."""
    block = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", block, flags=re.M) if rule != "total"}


@pytest.fixture(scope="session")
def local_study(tmp_path_factory):
    """The tiny study run locally, once per test session."""
    workdir = copy_workflow(tmp_path_factory.mktemp("study"))
    run_snakemake(workdir, "--cores", "2")
    return workdir


def train_small(data, architecture, out, *, seed=0, weights=None, **changes):
    """train_experiment for a few epochs on small data, writing into `out`; returns the model."""
    import tensorflow as tf
    from convbench.base.runtime import seed_everything
    from convbench.train.training import train_experiment

    settings = {"epochs": 2, "batch_size": 64, "optimizer": "adam", "learning_rate": 1e-3, "deterministic": True,
                "augmentation": None, **changes}
    seed_everything(seed)
    return train_experiment(
        data, architecture, seed=seed, settings=settings, strategy=tf.distribute.get_strategy(), weights=weights,
        model_path=out / "m.keras", history_path=out / "h.csv", meta_path=out / "meta.json", checkpoint_dir=out / "ckpt",
    )
