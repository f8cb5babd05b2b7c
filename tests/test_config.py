"""Config validation: defaults come from the schema; bad input stops Snakemake before any job."""

import subprocess
import sys

import pytest
import yaml
from conftest import PROJECT, copy_workflow
from convbench.base.config import coerce_cli_scalars
from convbench.data.catalog import BUILTIN
from convbench.models.architectures import ARCHITECTURES
from snakemake.utils import validate

SCHEMA = PROJECT / "workflow" / "schemas" / "config.schema.yaml"


def study(**extra):
    return {"datasets": ["digits"], "architectures": ["simple_cnn"], "seeds": [1], **extra}


def test_defaults_are_filled_from_the_schema():
    config = study()
    validate(config, str(SCHEMA))
    assert config["training"]["epochs"] == 20
    assert config["training"]["batch_size"] == 128
    assert config["data"]["scaling"] == "unit"
    assert config["resources"]["gpu"] == "auto"  # one GPU per job where the machine has GPUs


def test_user_values_survive_default_filling():
    config = study(training={"epochs": 3}, architecture_options={"simple_cnn": {"learning_rate": 0.01}})
    validate(config, str(SCHEMA))
    assert config["training"]["epochs"] == 3
    # overrides carry no defaults of their own, so they cannot undo the shared settings
    assert config["architecture_options"]["simple_cnn"] == {"learning_rate": 0.01}


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"datasets": ["MNIST"]}, ["'MNIST' does not match", "datasets"]),
        ({"custom_datasets": {"x": {"format": "npz"}}}, ["'npz' is not one of", "image_folder"]),
        ({"custom_datasets": {"x": {"format": "image_folder", "image_size": 32}}}, ["'path' is a required property"]),
        ({"custom_datasets": {"x": {"format": "mnist_npz", "files": [{"url": "https://e.org/x.npz", "sha256": "abc"}]}}},
         ["'abc' does not match"]),
        ({"custom_datasets": {"x": {"format": "mnist_npz", "files": [{"url": "e.org/x.npz", "sha256": "a" * 64}]}}},
         ["'e.org/x.npz' does not match"]),
        ({"training": {"epochs": 0}}, ["0 is less than the minimum of 1", "epochs"]),
        ({"training": {"epochs": "many"}}, ["'many' is not of type 'integer'"]),
        ({"seeds": "one"}, ["'one' is not of type 'array'"]),
        ({"colour": "red"}, ["'colour' was unexpected"]),
        ({"training": {"epoch": 3}}, ["'epoch' was unexpected"]),
    ],
)
def test_bad_config_is_rejected_naming_key_value_and_choices(bad, words):
    with pytest.raises(Exception) as error:
        validate(study(**bad), str(SCHEMA))
    message = str(error.value) + str(getattr(error.value, "__cause__", ""))
    for word in words:
        assert word in message


def test_schema_describes_every_builtin_dataset():
    schema = yaml.safe_load(SCHEMA.read_text())
    description = schema["properties"]["datasets"]["description"]
    assert all(name in description for name in BUILTIN)
    assert list(BUILTIN) == ["digits", "mnist", "fashion_mnist", "cifar10", "cifar100"]


def test_cli_strings_become_numbers_and_booleans():
    assert coerce_cli_scalars({"training": {"epochs": "5", "learning_rate": "1e-3", "deterministic": "false"},
                               "seeds": ["1", "2"], "datasets": ["digits"],
                               "custom_datasets": {"x": {"class_names": ["0", "1"], "image_size": "64",
                                                         "files": [{"sha256": "1" * 64}]}}}) == {
        "training": {"epochs": 5, "learning_rate": 0.001, "deterministic": False},
        "seeds": [1, 2],
        "datasets": ["digits"],
        "custom_datasets": {"x": {"class_names": ["0", "1"], "image_size": 64, "files": [{"sha256": "1" * 64}]}},
    }


TINY_LAYERS = "{tiny: {layers: [{Conv2D: {filters: 4, kernel_size: 3}}, %s, Flatten]}}"


@pytest.mark.slow  # starts Snakemake in a subprocess
@pytest.mark.parametrize(
    "config, message",
    [
        (["training={epochs: -2}"], "-2 is less than the minimum of 1"),
        (["architectures=[simple_cnn, resnet9]"],
         f"architectures: unknown architecture(s) resnet9; choose from {', '.join(ARCHITECTURES)}"),
        (["architecture_options={lenet: {epochs: 1}}"], "architecture_options: unknown architecture(s) lenet"),
        (["architectures=[tiny]", "custom_architectures=" + TINY_LAYERS % "{Conv2d: {filters: 2}}"],
         "custom architecture 'tiny', layer 2 (Conv2d): keras.layers has no layer called 'Conv2d'"),
        (["architectures=[tiny]", "custom_architectures=" + TINY_LAYERS % "{Dropout: {rat: 0.5}}"],
         "custom architecture 'tiny', layer 2 (Dropout): "),
        (["architectures=[tiny]", "custom_architectures=" + TINY_LAYERS % "{Lambda: {function: print}}"],
         "layer 2 (Lambda): Lambda would run code from the config and is not allowed"),
        (["architectures=[tiny]", "custom_architectures=" + TINY_LAYERS % "{Conv2D: {filters: 2, kernel_size: 40}}"],
         "custom architecture 'tiny', layer 2 (Conv2D): "),
        (["custom_architectures={bn_cnn: {layers: [Flatten]}}"], "has the name of a registered one"),
        (["render={feature_map_layers: {simple_cnn: [conv1, conv3]}}"],
         "render, simple_cnn: feature map layer 'conv3' does not exist in model 'simple_cnn'; layers with feature maps: conv1,"),
        (["render={filter_layers: {simple_cnn: flatten}}"],
         "render, simple_cnn: layer 'flatten' is not a Conv2D layer in model 'simple_cnn'; conv layers: conv1, conv2"),
        (["render={feature_map_layers: {simple_cn: [conv1]}}"], "render.feature_map_layers: unknown architecture(s) simple_cn"),
    ],
    ids=["epochs", "unknown-arch", "unknown-option-arch", "unknown-layer", "bad-argument", "lambda", "bad-shape",
         "name-clash", "feature-map-layer", "filter-layer", "render-arch"],
)
def test_snakemake_stops_before_any_job_on_bad_config(tmp_path, config, message):
    copy_workflow(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--config", *config],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_integral_numbers_of_integer_settings_become_integers():
    from convbench.base.validation import validate_config

    config = study(training={"epochs": 3.0, "learning_rate": 1.0}, seeds=[1.0, 2],
                   architecture_options={"simple_cnn": {"batch_size": 64.0}}, variants={"v": {"epochs": 2.0}},
                   render={"max_filters": 8.0})
    schema = yaml.safe_load(SCHEMA.read_text())
    validate_config(config, schema, lambda checked: validate(checked, str(SCHEMA)))
    values = [config["training"]["epochs"], config["seeds"][0], config["architecture_options"]["simple_cnn"]["batch_size"],
              config["variants"]["v"]["epochs"], config["render"]["max_filters"]]
    assert values == [3, 1, 64, 2, 8] and all(type(value) is int for value in values)
    assert type(config["training"]["learning_rate"]) is float  # numbers stay numbers
    with pytest.raises(ValueError, match=r"training.epochs: 3.5 is not of type 'integer'"):
        validate_config(study(training={"epochs": 3.5}), schema, lambda checked: None)


@pytest.mark.slow  # starts Snakemake in a subprocess
@pytest.mark.parametrize("config, message", [
    (["traning={epochs: 3}"], "Error in the config: 'traning' is not a key (did you mean 'training'?); allowed: datasets,"),
    (["training={epoch: 3}"], "Error in the config: in training: 'epoch' is not a key (did you mean 'epochs'?)"),
    (["training={optimizer: rms}"], "Error in the config: training.optimizer: 'rms' is not allowed; choose from adam, adamw, sgd"),
    (["resources={train_mem_mb: 256}"], "Error in the config: resources.train_mem_mb: 256 is less than 1500: a training job "
                                        "needs that much: TensorFlow with the default study's smallest model peaked at 1,322 MB"),
], ids=["top-level", "nested", "enum", "measured-need"])
def test_config_errors_are_one_short_paragraph(tmp_path, config, message):
    copy_workflow(tmp_path)
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--config", *config],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output
    assert "Traceback" not in output and 'File "' not in output and "$schema" not in output
    assert len(output.strip().splitlines()) <= 4  # profile and config notices, then the one message


def test_the_slurm_plugin_comes_with_every_install():
    """Without it Snakemake rejects `executor: slurm` while reading its arguments (before any line of
    the workflow could say what to install): it is a dependency, not only an extra."""
    import tomllib

    dependencies = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(requirement.startswith("snakemake-executor-plugin-slurm") for requirement in dependencies)


@pytest.mark.slow  # starts Snakemake in a subprocess
def test_the_slurm_profile_plans_the_study(tmp_path):
    copy_workflow(tmp_path)
    result = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "-n"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rule train_model:" in result.stdout
