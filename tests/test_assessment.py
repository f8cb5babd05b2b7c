"""The training job's evaluation, staged for the evaluate job (convbench.evaluate.assessment): adopted only when
it was made from the same model, data and settings, and complete; otherwise nothing is moved."""

import logging
import shutil

import numpy as np
import pytest
from conftest import train_small
from convbench.base.atomic import read_json, write_json
from convbench.evaluate.assessment import STAMP, adopt_staged, stage_assessment, staging_directory
from convbench.evaluate.figures import EVALUATION_FILES, evaluation_files
from convbench.models.architectures import get_architecture
from convbench.models.study import evaluation_settings

RENDER = {"max_filters": 8, "feature_map_images": 2, "max_feature_maps": 4, "gradcam_images": 4,
          "filter_layers": {}, "feature_map_layers": {}}
SETTINGS = evaluation_settings(RENDER, get_architecture("simple_cnn"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_prepared):
    out = tmp_path_factory.mktemp("trained")
    model = train_small(digits_prepared, "simple_cnn", out, epochs=1)
    write_json(out / "manifest.json", digits_prepared.manifest)  # the prepared data's, as the jobs get it
    return model, out


def staged(trained, digits_prepared, settings=SETTINGS):
    model, out = trained
    directory = staging_directory(out / "m.keras")
    assert stage_assessment(model, out / "m.keras", digits_prepared, out / "h.csv", out / "manifest.json",
                            settings, "simple_cnn on digits, seed 0")
    return directory


def adopt(trained, target, settings=SETTINGS):
    _, out = trained
    return adopt_staged(evaluation_files(target), settings, out / "m.keras", out / "manifest.json")


def test_staged_files_are_moved_into_the_outputs(trained, digits_prepared, tmp_path):
    directory = staged(trained, digits_prepared)
    before = {key: path.read_bytes() for key, path in evaluation_files(directory).items()}
    assert adopt(trained, tmp_path / "experiment")
    after = {key: path.read_bytes() for key, path in evaluation_files(tmp_path / "experiment").items()}
    assert after == before and set(after) == set(EVALUATION_FILES)
    assert not directory.exists()
    figures = read_json(tmp_path / "experiment" / "figures" / "figures.json")
    assert (tmp_path / "experiment" / "figures" / figures["curves"]["file"]).exists()  # names, not staging paths
    assert read_json(tmp_path / "experiment" / "anatomy.json")["about"] == SETTINGS["about"]


@pytest.mark.parametrize("change", ["settings", "model", "incomplete", "unstamped"])
def test_a_staged_evaluation_that_does_not_match_is_not_adopted(trained, digits_prepared, tmp_path, change, caplog):
    directory = staged(trained, digits_prepared)
    settings = SETTINGS
    _, out = trained
    model_bytes = (out / "m.keras").read_bytes()
    if change == "settings":
        settings = evaluation_settings({**RENDER, "max_filters": 16}, get_architecture("simple_cnn"))
    elif change == "model":
        (out / "m.keras").write_bytes(model_bytes + b"\0")
    elif change == "incomplete":  # e.g. a job killed while it moved the files
        (directory / EVALUATION_FILES["gradcam"]).unlink()
    else:
        (directory / STAMP).unlink()
    try:
        with caplog.at_level(logging.INFO, logger="convbench.evaluate.assessment"):
            assert not adopt(trained, tmp_path / "experiment", settings)
    finally:
        (out / "m.keras").write_bytes(model_bytes)
    assert not (tmp_path / "experiment").exists() and not directory.exists()
    assert "evaluating in full" in caplog.text


def test_a_failed_staging_leaves_nothing_and_does_not_raise(trained, digits_prepared, caplog):
    model, out = trained
    directory = staging_directory(out / "m.keras")
    broken = {**SETTINGS, "feature_map_layers": ["no_such_layer"]}
    with caplog.at_level(logging.INFO, logger="convbench.evaluate.assessment"):
        assert not stage_assessment(model, out / "m.keras", digits_prepared, out / "h.csv",
                                    out / "manifest.json", broken, "t")
    assert not directory.exists()
    assert "the evaluate job will evaluate it again" in caplog.text


def test_staged_predictions_equal_those_of_the_saved_model(trained, digits_prepared, tmp_path):
    """The training job evaluates the model in memory; the evaluate job would load the saved file."""
    from convbench.evaluate.evaluation import evaluate_experiment

    directory = staged(trained, digits_prepared)
    _, out = trained
    evaluate_experiment(out / "m.keras", digits_prepared, tmp_path / "metrics.json", tmp_path / "p.npz")
    np.testing.assert_array_equal(np.load(directory / EVALUATION_FILES["predictions"])["probabilities"],
                                  np.load(tmp_path / "p.npz")["probabilities"])
    assert read_json(directory / EVALUATION_FILES["metrics"]) == read_json(tmp_path / "metrics.json")
    shutil.rmtree(directory)


def test_the_training_job_stamps_with_the_settings_the_evaluate_rule_gets():
    """The rule's param comes from the Snakefile's resolved architectures, the training job's stamp
    from the architecture it builds from its params: equal for built-in, custom and transfer ones,
    or every evaluate job would evaluate in full."""
    from convbench.models.study import architecture_from_params, resolve_architectures

    custom = {"tiny": {"layers": ["Flatten"], "description": "a flat net"}}
    transfer = {"tl": {"base": "mobilenetv2", "weights": "imagenet"}}
    study = resolve_architectures(custom, transfer)
    render = {**RENDER, "filter_layers": {"tiny": "conv1"}, "feature_map_layers": {"tl": ["block_1_add"]}}
    for name in ("simple_cnn", "tiny", "tl"):
        built = architecture_from_params(name, custom=custom.get(name), transfer=transfer.get(name))
        assert evaluation_settings(render, built) == evaluation_settings(render, study[name])
    assert evaluation_settings(render, study["tiny"])["filter_layer"] == "conv1"
    assert evaluation_settings(render, study["tl"])["feature_map_layers"] == ["block_1_add"]
    assert "filter_layers" not in evaluation_settings(render, study["tl"])["render"]  # only its own layers
