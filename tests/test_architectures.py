"""Every registered architecture builds and trains one step."""

import keras
import numpy as np
import pytest

from conftest import train_small
from convbench.architectures import ARCHITECTURES, create_model, get_architecture


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_builds_and_trains_one_step(name):
    arch = get_architecture(name)
    shape = (arch.min_size, arch.min_size, 3 if arch.rgb else 1)
    model = create_model(name, shape, 5)
    assert model.output_shape == (None, 5)
    # Eager: one step does not repay tracing a 100-layer graph (79 s for resnet101 here).
    model.compile("adam", "categorical_crossentropy", run_eagerly=True)
    x = np.random.default_rng(0).random((4, *shape), np.float32)
    y = keras.utils.to_categorical([0, 1, 2, 3], 5)
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)


def test_simple_cnn_is_the_classic_mnist_convnet():
    model = create_model("simple_cnn", (28, 28, 1), 10)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Dense", "Dropout", "Dense"]
    assert model.count_params() == 225_034  # 320 + 18,496 + 204,928 + 1,290


def test_unknown_architecture_lists_the_registered_ones():
    with pytest.raises(KeyError, match="registered: alexnet, bn_cnn, efficientnetb0, inceptionv3, lenet5"):
        get_architecture("resnet9")


def test_resnet20_has_the_papers_depth_and_size():
    model = create_model("resnet20", (32, 32, 3), 10)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and "shortcut" not in layer.name]
    assert len(convs) + 1 == 20  # 19 conv layers + the classifier
    assert 0.26e6 < model.count_params() < 0.29e6  # 0.27 M in He et al. (2016), Table 6


def test_a_yaml_declared_architecture_trains(tmp_path, digits_prepared):
    import yaml

    from convbench.architectures import ARCHITECTURES, register_custom
    from convbench.atomic import read_json

    declared = yaml.safe_load("""
    tiny_yaml:
      min_size: 28
      layers:
        - Conv2D: {filters: 8, kernel_size: 3, activation: relu}
        - MaxPooling2D: {pool_size: 2}
        - Flatten
        - Dense: {units: 32, activation: relu}
    """)
    register_custom(declared)
    try:
        model = train_small(digits_prepared, "tiny_yaml", tmp_path)
    finally:
        ARCHITECTURES.pop("tiny_yaml")
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    assert model.output_shape == (None, 10)
    assert read_json(tmp_path / "meta.json")["epochs_run"] == 2
