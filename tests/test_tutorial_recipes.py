"""The three tutorial studies against the tutorial's code (benchmarks/tutorial_code.py), argument by
argument: every setting equals the tutorial's, or differs where the study lists a deviation with its
reason (`reproduces.deviations`), and nowhere else."""

import importlib.util

import numpy as np
import pytest
import yaml
from conftest import PROJECT
from convbench.base.config import experiment_settings, study_variants
from snakemake.utils import validate

SCHEMA = PROJECT / "workflow" / "schemas" / "config.schema.yaml"
ADAM = 0.001  # keras.optimizers.Adam()'s learning rate: compile(optimizer="adam")
IMAGE_DATA_GENERATOR = {"rotation_range": 15, "width_shift_range": 0.1, "height_shift_range": 0.1,
                        "shear_range": 0, "zoom_range": 0, "fill_mode": "nearest", "single_affine": True}
NO_CALLBACKS = {"schedule": "constant", "early_stopping.enabled": False}
CALLBACKS = {"schedule": "plateau", "early_stopping.enabled": True}  # their arguments: the Keras objects, below
# The tutorial's code, one row per argument: (study, variant, setting, the tutorial's value, deviation).
# `deviation` names the study's `reproduces.deviations` entry when the study differs on purpose.
MNIST_RECIPE = {"dataset": "mnist", "optimizer": "adam", "learning_rate": ADAM, "label_smoothing": 0.0,
                "batch_size": 128, "epochs": 10, "precision": "float32", "data.scaling": "unit",
                "data.validation_fraction": 0.1, "data.validation_holdout": "last",
                "network:simple_cnn": "classic_convnet", "network:bn_cnn": "deeper_cnn"}
TUTORIAL_DEVIATIONS = {"dataset": "dataset", "network:bn_cnn": "deeper CNN (bn_cnn)",
                       "augmentation.horizontal_flip": "augmented variant"}
TUTORIAL = [
    *[("tutorial.yaml", variant, setting, value, TUTORIAL_DEVIATIONS.get(setting))
      for variant in ("default", "augmented", "callbacks")
      for setting, value in {**MNIST_RECIPE, **({"epochs": 50} if variant == "callbacks" else {}),
                             **(CALLBACKS if variant == "callbacks" else NO_CALLBACKS)}.items()],
    *[("tutorial.yaml", "augmented", f"augmentation.{knob}", value, None)
      for knob, value in IMAGE_DATA_GENERATOR.items()],
    ("tutorial.yaml", "augmented", "augmentation.horizontal_flip", True, "augmented variant"),
    *[("cifar10-tutorial.yaml", "default", setting, value, None) for setting, value in {
        "dataset": "cifar10", "optimizer": "adam", "learning_rate": ADAM, "label_smoothing": 0.0, "batch_size": 64,
        "epochs": 50, "precision": "float32", "data.scaling": "unit", "network:bn_cnn_tutorial": "deeper_cnn",
        **CALLBACKS, **{f"augmentation.{knob}": value for knob, value in IMAGE_DATA_GENERATOR.items()},
        "augmentation.horizontal_flip": True}.items()],
    ("cifar10-tutorial.yaml", "default", "validation data", "test split", "validation data"),
    # The VGG16 transfer recipe: phase 1's compile/fit, phase 2's unfreezing, compile and fit.
    *[("cifar10-transfer-tutorial.yaml", "default", setting, value, None) for setting, value in {
        "dataset": "cifar10", "optimizer": "adam", "learning_rate": ADAM, "label_smoothing": 0.0,
        "batch_size": 32,  # fit() without batch_size
        "epochs": 10, "precision": "float32", "data.scaling": "unit", "augmented": False, **NO_CALLBACKS,
        "data.validation_fraction": 0.2, "data.validation_holdout": "last",  # validation_split=0.2, both phases
        "fine_tune.layers": 4, "fine_tune.learning_rate": 1e-5, "fine_tune.epochs": 5,
        "network:vgg16_imagenet": "vgg16_transfer"}.items()],
    ("cifar10-transfer-tutorial.yaml", "default", "input", "32x32 as given, [0, 1]", "input"),
]


def load_study(study_file):
    config = yaml.safe_load((PROJECT / "studies" / study_file).read_text())
    validate(config, str(SCHEMA))  # fills the schema's defaults, as the workflow does
    return config


def tutorial_code():
    spec = importlib.util.spec_from_file_location("tutorial_code", PROJECT / "benchmarks" / "tutorial_code.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def layer_signature(layer):
    """What a layer computes, whatever it is called: class, shape arguments, activation, initializers."""
    config = layer.get_config()
    kind = type(layer).__name__
    if kind == "ReLU":  # layers.ReLU() and layers.Activation("relu") compute the same
        return ("Activation", "relu")
    keys = {"Conv2D": ("filters", "kernel_size", "strides", "padding", "use_bias", "activation", "kernel_initializer",
                       "bias_initializer"),
            "Dense": ("units", "use_bias", "activation", "kernel_initializer", "bias_initializer"),
            "BatchNormalization": ("momentum", "epsilon", "center", "scale", "axis"),
            "Dropout": ("rate",), "MaxPooling2D": ("pool_size", "strides", "padding"), "Activation": ("activation",),
            "Flatten": (), "GlobalAveragePooling2D": ("keepdims",)}[kind]
    return (kind, *[str(config[key]) if isinstance(config[key], dict) else config[key] for key in keys])


def network_signature(model):
    return [layer_signature(layer) for layer in model.layers]


def effective(config, study_file, variant, setting):
    """convbench's value of one row's setting in the study, as its jobs get it."""
    dataset = config["datasets"][0]
    if setting == "dataset":
        return dataset
    if setting == "input":  # what the base is fed: a transfer model resizes and converts in the model
        return "resized to 224x224, ImageNet preprocessing" if config.get("transfer_learning") else "as given"
    if setting.startswith("fine_tune."):
        from convbench.train.training import Phases

        arch = config["architectures"][0]
        settings = experiment_settings(config, dataset, arch, study_variants(config)[variant])
        return Phases.of(settings, config["transfer_learning"][arch]).fine_tune[setting.removeprefix("fine_tune.")]
    if setting == "augmented":
        from convbench.base.config import augmentation_on

        settings = experiment_settings(config, dataset, config["architectures"][0], study_variants(config)[variant])
        return bool(augmentation_on(settings["augmentation"]))
    if setting == "validation data":
        return "test split" if config["data"].get("validation_fraction") is None else "held-out training images"
    if setting.startswith("data."):
        return config["data"].get(setting.removeprefix("data."), "stratified")
    if setting.startswith("network:"):
        from convbench.models.architectures import create_model

        architecture = setting.removeprefix("network:")
        assert architecture in config["architectures"]
        if architecture in config.get("transfer_learning", {}):
            return transfer_signature(config, architecture)
        return network_signature(create_model(architecture, (32, 32, 3), 10))
    settings = experiment_settings(config, dataset, config["architectures"][0], study_variants(config)[variant])
    for key in setting.split("."):
        settings = settings[key]
    return settings


def transfer_signature(config, architecture):
    """A transfer model as the tutorial's code shows it: its base's constructor and input, frozen; its head layer
    by layer; and the base's layers phase 2 trains."""
    from convbench.models.study import resolve_architectures
    from convbench.models.transfer import pretrained_base, unfreeze_last
    from convbench.train.training import Phases

    arch = resolve_architectures({}, config["transfer_learning"])[architecture]
    model = arch.build((224, 224, 3), 10)
    base = pretrained_base(model)
    frozen = not any(layer.trainable for layer in base.layers)
    head = network_signature(keras_layers_after(model, base))
    settings = experiment_settings(config, config["datasets"][0], architecture)
    unfrozen = unfreeze_last(model, Phases.of(settings, arch.transfer).fine_tune["layers"])
    return (base.name, tuple(base.input_shape), frozen, head, unfrozen)


def keras_layers_after(model, base):
    return type("Head", (), {"layers": model.layers[model.layers.index(base) + 1:]})()


def expected(value, setting):
    if setting.startswith("network:") and value == "vgg16_transfer":
        model, base = tutorial_code().vgg16_transfer(weights=None)
        frozen = not any(layer.trainable for layer in base.layers)
        head = network_signature(keras_layers_after(model, base))
        tutorial_code().unfreeze_for_fine_tuning(base)
        return (base.name, tuple(base.input_shape), frozen, head, [layer.name for layer in base.layers if layer.trainable])
    if setting.startswith("network:"):
        return network_signature(getattr(tutorial_code(), value)((32, 32, 3), 10))
    return value


@pytest.mark.parametrize("study_file, variant, setting, tutorial, deviation", TUTORIAL,
                         ids=[f"{row[0]}:{row[1]}:{row[2]}" for row in TUTORIAL])
def test_each_setting_is_the_tutorials_or_a_stated_deviation(study_file, variant, setting, tutorial, deviation):
    config = load_study(study_file)
    value, wanted = effective(config, study_file, variant, setting), expected(tutorial, setting)
    if deviation is None:
        assert value == wanted, f"{study_file} {variant}: {setting} is {value!r}, the tutorial's is {wanted!r}"
    else:
        assert value != wanted, f"{study_file}: {setting} now matches the tutorial; drop the deviation {deviation!r}"
        stated = [row["setting"] for row in config["reproduces"]["deviations"]]
        assert deviation in stated, f"{study_file}: {setting} differs from the tutorial without a stated reason"


@pytest.mark.parametrize("study_file", ["tutorial.yaml", "cifar10-tutorial.yaml", "cifar10-transfer-tutorial.yaml"])
def test_every_stated_deviation_is_a_real_one(study_file):
    """A deviation the study states is one the table finds (none stale, none unexplained), and the
    README lists it too."""
    config = load_study(study_file)
    found = {row[4] for row in TUTORIAL if row[0] == study_file and row[4]}
    stated = [row["setting"] for row in config["reproduces"]["deviations"]]
    assert sorted(stated) == sorted(found)
    readme = (PROJECT / "README.md").read_text()
    section = readme[readme.index("## The tutorial, exactly"):]
    section = section[:section.index("\n## ", 1)]
    for row in config["reproduces"]["deviations"]:
        assert row["setting"] in section and row["reason"] in section, (study_file, row["setting"])


@pytest.mark.parametrize("study_file, variant", [("tutorial.yaml", "callbacks"), ("cifar10-tutorial.yaml", "default")])
def test_the_callbacks_are_the_tutorials_keras_objects(study_file, variant):
    """ReduceLROnPlateau(patience=5) and EarlyStopping(patience=10, restore_best_weights=True), attribute by
    attribute (Keras' defaults for everything the tutorial leaves unset)."""
    from convbench.train.checkpoints import make_callbacks

    config = load_study(study_file)
    overrides = study_variants(config)[variant]
    settings = experiment_settings(config, config["datasets"][0], config["architectures"][0], overrides)
    made = make_callbacks(settings, resume={})
    plateau, early_stopping = tutorial_code().tutorial_callbacks()
    for name, tutorial in (("plateau", plateau), ("early_stopping", early_stopping)):
        for attribute in ("monitor", "factor", "patience", "min_lr", "min_delta", "cooldown", "mode",
                          "restore_best_weights", "baseline", "start_from_epoch"):
            assert getattr(made[name], attribute, None) == getattr(tutorial, attribute, None), (name, attribute)


def test_the_augmentation_knobs_are_the_tutorials_image_data_generator():
    generator = tutorial_code().tutorial_augmentation()
    config = load_study("cifar10-tutorial.yaml")
    knobs = experiment_settings(config, "cifar10", "bn_cnn_tutorial")["augmentation"]
    assert (knobs["rotation_range"], knobs["width_shift_range"], knobs["height_shift_range"], knobs["shear_range"],
            knobs["horizontal_flip"], knobs["fill_mode"]) == (
        generator.rotation_range, generator.width_shift_range, generator.height_shift_range, generator.shear_range,
        generator.horizontal_flip, generator.fill_mode)
    assert list(generator.zoom_range) == [1 - knobs["zoom_range"], 1 + knobs["zoom_range"]]
    assert generator.interpolation_order == 1 and knobs["single_affine"]  # one bilinear resampling


def test_validation_holdout_last_is_kerass_validation_split():
    """The same images Keras' fit(validation_split=0.1) holds out of the arrays it is given."""
    from convbench.data.datasets import stratified_splits
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split  # what fit() calls

    labels = np.arange(1797) % 10
    train, val, test = stratified_splits(labels, None, test_fraction=0.2, validation_fraction=0.1, seed=0,
                                         validation_holdout="last")
    given = np.sort(np.concatenate([train, val]))
    keras_train, keras_val = train_validation_split((given,), validation_split=0.1)
    assert np.array_equal(train, keras_train[0]) and np.array_equal(val, keras_val[0])
    assert not set(given) & set(test)
    stratified = stratified_splits(labels, None, test_fraction=0.2, validation_fraction=0.1, seed=0)
    assert np.array_equal(stratified[2], test)  # the test split is the same either way


def test_a_study_that_claims_no_recipe_gets_no_recipe_line():
    from convbench.report.recipe import recipe_note

    assert recipe_note(None) == "" and recipe_note({}) == ""
    note = recipe_note({"recipe": "R", "deviations": []})
    assert "0 stated deviations" in note and "<details" not in note
