"""Figures: tile counts follow the model, PNGs decode, bad layer names are explained."""

import matplotlib.image
import pytest

from convbench.architectures import create_model
from convbench.visualization import find_conv_layer, grid_shape, plot_feature_maps, plot_filters


@pytest.fixture(scope="module")
def model():
    return create_model("bn_cnn", (28, 28, 1), 10)


def test_grid_holds_every_tile():
    for count in (1, 7, 32, 64, 100):
        rows, columns = grid_shape(count)
        assert rows * columns >= count and (rows - 1) * columns < count


def test_filter_grid_has_one_tile_per_filter(tmp_path, model):
    info = plot_filters(model, tmp_path / "f.png", "t")
    assert info == {"layer": "block1_conv1", "tiles": 32, "grid": [6, 6]}
    assert matplotlib.image.imread(tmp_path / "f.png").ndim == 3


def test_filter_grid_respects_the_cap_and_named_layer(tmp_path, model):
    info = plot_filters(model, tmp_path / "f.png", "t", layer_name="block3_conv2", max_filters=20)
    assert info["layer"] == "block3_conv2" and info["tiles"] == 20


def test_feature_maps_one_row_per_image(tmp_path, model, digits_prepared):
    images = digits_prepared.scaled("test")[0][:3]
    info = plot_feature_maps(model, images, tmp_path / "m.png", "t", max_maps=8)
    assert info["grid"] == [3, 9]
    assert matplotlib.image.imread(tmp_path / "m.png").shape[0] > 100


@pytest.mark.parametrize("kind, problem", [(None, "does not exist"), ("Flatten", "is not a Conv2D layer")])
def test_bad_layer_name_lists_the_conv_layers(model, kind, problem):
    name = next((layer.name for layer in model.layers if type(layer).__name__ == kind), "nope")
    with pytest.raises(ValueError, match=f"{problem}.*conv layers: block1_conv1, block1_conv2, block2_conv1"):
        find_conv_layer(model, name)
