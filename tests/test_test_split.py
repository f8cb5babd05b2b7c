"""Identity at the right grain (issue #43): an image-folder dataset with its own test folder prepares that
folder apart (rule prepare_test_split), so replacing only test images re-evaluates every model and retrains
none, while replacing a training image retrains."""

import json

import canonical
import pytest
import yaml
from conftest import copy_workflow, planned_jobs, run_snakemake

pytestmark = pytest.mark.integration

STUDY = {
    "datasets": ["split_folders"],
    "architectures": ["simple_cnn"],
    "seeds": [1],
    "custom_datasets": {
        "split_folders": {"format": "image_folder", "path": "train", "test_path": "test", "image_size": 20},
    },
}


def test_new_test_images_re_evaluate_and_retrain_nothing(tmp_path):
    workdir = copy_workflow(tmp_path)
    canonical.image_folder(workdir / "train", per_class=20, size=20)
    canonical.image_folder(workdir / "test", per_class=4, size=20, seed=3)
    (workdir / "study.yaml").write_text(yaml.safe_dump(STUDY))
    metrics = workdir / "results/experiments/split_folders/simple_cnn/default/seed1/metrics.json"
    options = [str(metrics.relative_to(workdir)), "--configfile", "study.yaml"]  # training and evaluation only
    run_snakemake(workdir, "--cores", "2", *options, config=["training={epochs: 1}"])
    assert json.loads(metrics.read_text())["test_images"] == 12  # the test folder's, prepared apart

    # one test image replaced by another owl (of the training folder): the test split only
    test_image = sorted((workdir / "test" / "owls").glob("*"))[0]
    test_image.write_bytes(sorted((workdir / "train" / "owls").glob("*"))[0].read_bytes())
    planned = planned_jobs(run_snakemake(workdir, "-n", *options, config=["training={epochs: 1}"]))
    assert planned.get("prepare_test_split") == 1 and planned.get("evaluate_model") == 1, planned
    assert not {"prepare_dataset", "train_model"} & set(planned), planned
    run_snakemake(workdir, "--cores", "2", *options, config=["training={epochs: 1}"])
    assert json.loads(metrics.read_text())["test_images"] == 12
    assert "Nothing to be done" in run_snakemake(workdir, "-n", *options, config=["training={epochs: 1}"])

    # a training image replaced: everything
    train_image = sorted((workdir / "train" / "cats").glob("*"))[0]
    train_image.write_bytes(sorted((workdir / "train" / "dogs").glob("*"))[0].read_bytes())
    planned = planned_jobs(run_snakemake(workdir, "-n", *options, config=["training={epochs: 1}"]))
    assert planned.get("prepare_dataset") == 1 and planned.get("train_model") == 1, planned
