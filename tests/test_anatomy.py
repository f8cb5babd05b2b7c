"""Inside the networks: convolution by hand, receptive fields and the output-size arithmetic."""

import keras
import numpy as np
import pytest
from convbench.models.anatomy import conv2d_numpy, first_conv_by_hand, layer_table, same_padding, size_arithmetic
from convbench.models.architectures import create_model


@pytest.mark.parametrize("stride, padding", [(1, "valid"), (1, "same"), (2, "same"), (2, "valid")])
def test_numpy_convolution_equals_keras_conv2d(stride, padding):
    rng = np.random.default_rng(0)
    image = rng.random((9, 10, 3), np.float32)
    layer = keras.layers.Conv2D(4, 3, strides=stride, padding=padding)
    expected = np.asarray(layer(image[np.newaxis]))[0]
    kernel, bias = layer.get_weights()
    assert np.max(np.abs(conv2d_numpy(image, kernel, bias, stride, padding) - expected)) < 1e-5


def test_same_padding_puts_the_odd_pixel_after():
    assert same_padding(28, 3, 1) == (1, 1) and same_padding(32, 3, 2) == (0, 1) and same_padding(7, 1, 1) == (0, 0)


@pytest.mark.parametrize("name, shape", [("simple_cnn", (28, 28, 1)), ("bn_cnn", (28, 28, 1)), ("resnet20", (32, 32, 3))])
def test_the_first_convolution_by_hand_matches_the_model(name, shape):
    model = create_model(name, shape, 10)
    image = np.random.default_rng(1).random(model.input_shape[1:], np.float32)
    layer_input, by_hand, by_layer, facts = first_conv_by_hand(model, image)
    assert by_hand.shape == by_layer.shape and facts["max_abs_difference"] < 1e-5


def fields(model):
    return {row["layer"]: (row["receptive_field"], row["jump"]) for row in layer_table(model)}


def test_receptive_fields_of_simple_cnn_by_hand():
    # conv 3x3: 3; pool 2/2: 3 + 1 = 4, jump 2; conv 3x3: 4 + 2 * 2 = 8; pool 2/2: 8 + 1 * 2 = 10, jump 4
    table = layer_table(create_model("simple_cnn", (28, 28, 1), 10))
    spatial = [(row["receptive_field"], row["jump"]) for row in table if row["kernel"]]
    assert spatial == [(3, 1), (4, 2), (8, 2), (10, 4)]
    assert table[-1]["receptive_field"] is None  # the dense head sees the whole image


def test_receptive_field_of_resnet20_by_hand():
    # stem + 3 blocks of 2 convs at stride 1: 3 + 6 * 2 = 15; stage 2 opens with a stride-2 conv:
    # 15 + 2 = 17, jump 2, then 5 convs: + 5 * 2 * 2 = 37; stage 3: 37 + 2 * 2 = 41, jump 4, + 5 * 2 * 4 = 81
    found = fields(create_model("resnet20", (32, 32, 3), 10))
    assert found["stage1_block3_conv2"] == (15, 1)
    assert found["stage2_block1_conv1"] == (17, 2) and found["stage2_block3_conv2"] == (37, 2)
    assert found["stage3_block1_conv1"] == (41, 4) and found["stage3_block3_conv2"] == (81, 4)


def test_output_size_arithmetic_of_the_first_layers():
    model = create_model("simple_cnn", (28, 28, 1), 10)
    lines = [line.split(": ", 1)[1] for line in size_arithmetic(layer_table(model), 28)]  # without layer names
    assert lines == ["(28 + 2·0 − 3) / 1 + 1 = 26", "(26 + 2·0 − 2) / 2 + 1 = 13", "(13 + 2·0 − 3) / 1 + 1 = 11"]


def test_the_first_convolution_by_hand_inside_a_nested_base():
    """Transfer models hold their convolutions in a nested keras.applications base."""
    base_input = keras.Input((16, 16, 3))
    base = keras.Model(base_input, keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(base_input))
    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(base(keras.layers.Rescaling(2.0)(inputs))))
    model = keras.Model(inputs, outputs)
    image = np.random.default_rng(2).random((16, 16, 3), np.float32)
    layer_input, by_hand, by_layer, facts = first_conv_by_hand(model, image)
    assert np.allclose(layer_input, 2 * image) and facts["max_abs_difference"] < 1e-5 and facts["activation"] == "relu"



@pytest.mark.parametrize("name, side, depth, with_pooling", [
    ("lenet5", 32, 5, 7),  # the tutorial's 7 layers count its two subsampling layers
    ("alexnet", 32, 8, 11), ("vgg16", 96, 16, 21), ("resnet50", 96, 50, 52),  # 4 shortcut projections not counted
    ("googlenet", 96, 22, 27),  # "22 layers deep when counting only layers with parameters (or 27 ... pooling)"
    ("mobilenet", 96, 28, 29),  # "counting depthwise and pointwise convolutions as separate layers, 28 layers"
])
def test_depth_is_the_weighted_layers_on_the_longest_path(name, side, depth, with_pooling):
    from convbench.models.anatomy import layer_table, network_depth
    from convbench.models.architectures import create_model

    model = create_model(name, (side, side, 1 if name == "lenet5" else 3), 10, input_size=side)
    assert network_depth(layer_table(model)) == (depth, with_pooling)


def test_the_architectures_table_shows_our_depth_beside_the_tutorials_row():
    """No row disagrees silently: LeNet-5's 5 weighted layers (7 with pooling) beside the tutorial's 7, the
    counting rule stated under the table; an anatomy made before depths were counted shows none."""
    import types

    import pandas as pd
    from convbench.report.networks import DEPTH_RULE, architectures_table

    model = create_model("lenet5", (32, 32, 1), 10)
    experiment = types.SimpleNamespace(model="lenet5", dataset="digits", architecture="lenet5", variant="default")
    old = types.SimpleNamespace(model="alexnet", dataset="digits", architecture="alexnet", variant="default")
    board = pd.DataFrame([{"dataset": "digits", "architecture": name, "variant": "default", "accuracy_mean": 0.9,
                           "latency_ms": 1.0} for name in ("lenet5", "alexnet")])
    rows = layer_table(model)
    before = [{key: value for key, value in row.items() if not key.startswith("depth")} for row in rows]
    html = architectures_table([(experiment, {"layers": rows}), (old, {"layers": before})], board)
    assert "5 (7 with pooling)" in html and "LeNet-5, 1998, 7 layers" in html and DEPTH_RULE in html
    assert "AlexNet, 2012, 8 layers" in html and "–" in html


def test_the_tutorials_table_names_registered_architectures_only():
    from convbench.models.architectures import ARCHITECTURES
    from convbench.models.famous import TUTORIAL_TABLE

    assert set(TUTORIAL_TABLE) <= set(ARCHITECTURES)
