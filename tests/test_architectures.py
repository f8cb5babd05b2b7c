"""Every registered architecture builds and trains one step."""

import keras
import numpy as np
import pytest

from convbench.architectures import ARCHITECTURES, create_model, get_architecture


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_builds_and_trains_one_step(name):
    arch = get_architecture(name)
    shape = (arch.min_size, arch.min_size, 3 if arch.rgb else 1)
    model = create_model(name, shape, 5)
    assert model.output_shape == (None, 5)
    model.compile("adam", "categorical_crossentropy")
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
    with pytest.raises(KeyError, match="registered: bn_cnn, simple_cnn"):
        get_architecture("resnet9")
