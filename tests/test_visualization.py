"""Figures: tile counts follow the model, PNGs decode, bad layer names are explained."""

import matplotlib.image
import numpy as np
import pytest
from convbench.evaluate.visualization import find_conv_layer, grid_shape, plot_feature_maps, plot_filters
from convbench.models.architectures import create_model


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


def test_feature_maps_at_the_first_conv_of_each_block(tmp_path, model, digits_prepared):
    images = digits_prepared.scaled("test")[0][:3]
    info = plot_feature_maps(model, images, tmp_path / "m.png", "t", max_maps=8)
    assert info["layers"] == ["block1_conv1", "block2_conv1", "block3_conv1"]
    assert info["grid"] == [3 * 3, 9]  # a row per image and block; input + 8 channels
    assert matplotlib.image.imread(tmp_path / "m.png").shape[0] > 100


def test_feature_maps_of_the_layers_the_config_names(tmp_path, model, digits_prepared):
    images = digits_prepared.scaled("test")[0][:2]
    pooling = next(layer.name for layer in model.layers if type(layer).__name__ == "MaxPooling2D")  # auto-named
    named = ["block2_conv2", pooling]  # any layer with a height x width x channels output, in that order
    info = plot_feature_maps(model, images, tmp_path / "m.png", "t", max_maps=4, layer_names=named)
    assert info["layers"] == named and info["grid"] == [2 * 2, 5]
    flatten = next(layer.name for layer in model.layers if type(layer).__name__ == "Flatten")
    with pytest.raises(ValueError, match=f"{flatten}' has no height × width × channels output.*block1_conv1"):
        plot_feature_maps(model, images, tmp_path / "x.png", "t", layer_names=[flatten])
    with pytest.raises(ValueError, match="'nope' does not exist"):
        plot_feature_maps(model, images, tmp_path / "x.png", "t", layer_names=["nope"])


def test_resnet_block_outputs_are_named_for_the_config(tmp_path):
    import numpy as np

    resnet = create_model("resnet20", (32, 32, 3), 10)
    named = ["stage1_block3_out", "stage3_block3_out"]  # the README's example
    info = plot_feature_maps(resnet, np.zeros((1, 32, 32, 3), np.float32), tmp_path / "m.png", "t", layer_names=named)
    assert info["layers"] == named


@pytest.mark.parametrize("kind, problem", [(None, "does not exist"), ("Flatten", "is not a Conv2D layer")])
def test_bad_layer_name_lists_the_conv_layers(model, kind, problem):
    name = next((layer.name for layer in model.layers if type(layer).__name__ == kind), "nope")
    with pytest.raises(ValueError, match=f"{problem}.*conv layers: block1_conv1, block1_conv2, block2_conv1"):
        find_conv_layer(model, name)


def transfer_model():
    """A keras.applications base nested inside a transfer model, as transfer learning builds it."""
    import keras

    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.35)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))


@pytest.mark.parametrize("make", [lambda: create_model("simple_cnn", (32, 32, 3), 4), transfer_model],
                         ids=["simple_cnn", "mobilenetv2_transfer"])
def test_every_figure_for_a_plain_and_a_nested_model(tmp_path, make):
    import numpy as np
    from convbench.evaluate.evaluation import load_model
    from convbench.evaluate.visualization import plot_grad_cam, plot_misclassified

    make().save(tmp_path / "model.keras")
    model = load_model(tmp_path / "model.keras")  # as the evaluate job sees it
    rng = np.random.default_rng(0)
    images = rng.random((6, 32, 32, 3), np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1])
    names = ["a", "b", "c", "d"]
    filters = plot_filters(model, tmp_path / "f.png", "t", max_filters=16)
    assert filters["tiles"] == min(16, find_conv_layer(model).filters)
    maps = plot_feature_maps(model, images[:2], tmp_path / "m.png", "t", max_maps=4)
    assert maps["grid"][0] == 2 * len(maps["layers"]) and len(maps["layers"]) >= 2
    cam = plot_grad_cam(model, images, labels, names, tmp_path / "g.png", "t")
    assert cam["tiles"] == 6 and len(cam["predicted"]) == 6
    # the heat maps, for the report's side-by-side view: one per image, at most 28x28, within [0, 1]
    heat = np.asarray(cam["heat"])
    assert heat.shape[0] == 6 and max(heat.shape[1:]) <= 28 and heat.min() >= 0 and heat.max() <= 1
    # layers can be named anywhere, inside a nested keras.applications base too
    import keras
    from convbench.models.anatomy import iter_layers

    spatial = [layer.name for layer in iter_layers(model) if not hasattr(layer, "layers")
               and not isinstance(layer, keras.layers.InputLayer) and len(layer.output.shape) == 4]
    assert plot_feature_maps(model, images[:1], tmp_path / "n.png", "t", layer_names=spatial[1:3])["layers"] == spatial[1:3]
    probabilities = np.asarray(model.predict(images, verbose=0))
    wrong = plot_misclassified(images, labels, probabilities, names, tmp_path / "w.png", "t")
    assert wrong["errors"] == int((probabilities.argmax(1) != labels).sum())
    for name in "fmgw":
        assert matplotlib.image.imread(tmp_path / f"{name}.png").ndim == 3


def quadrant_dataset(count, rng):
    """Class = orientation of the stripes in the top-left quadrant; the other quadrants hold noise."""
    import numpy as np

    stripes = np.zeros((2, 16, 16), np.float32)
    stripes[0, ::4, :] = stripes[0, 1::4, :] = 1  # horizontal
    stripes[1, :, ::4] = stripes[1, :, 1::4] = 1  # vertical
    labels = rng.integers(0, 2, count)
    images = rng.random((count, 32, 32, 1), np.float32)
    images[:, :16, :16, 0] = stripes[labels] + 0.1 * images[:, :16, :16, 0]
    return images, labels


def test_grad_cam_heat_lies_in_the_deciding_quadrant():
    import keras
    import numpy as np
    from convbench.base.runtime import seed_everything
    from convbench.evaluate.visualization import grad_cam

    seed_everything(0)
    rng = np.random.default_rng(0)
    x, y = quadrant_dataset(600, rng)
    model = create_model("simple_cnn", (32, 32, 1), 2)
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, keras.utils.to_categorical(y, 2), epochs=8, batch_size=32, verbose=0)
    x_test, y_test = quadrant_dataset(40, rng)
    assert model.evaluate(x_test, keras.utils.to_categorical(y_test, 2), verbose=0)[1] > 0.9
    heat, predicted, _ = grad_cam(model, x_test)
    half = heat.shape[1] // 2
    share = heat[:, :half, :half].sum() / heat.sum()
    assert share > 0.5, f"only {share:.0%} of the Grad-CAM heat is in the deciding quadrant"


def test_augmentation_preview_grid(tmp_path, digits_prepared):
    from convbench.evaluate.visualization import plot_augmentation_preview
    from convbench.train.training import make_augmentation

    settings = {"rotation_range": 15, "width_shift_range": 0.1, "height_shift_range": 0.1, "shear_range": 0,
                "zoom_range": 0.1, "horizontal_flip": False, "fill_mode": "nearest"}
    info = plot_augmentation_preview(digits_prepared, make_augmentation(settings, 0), tmp_path / "a.png", "t")
    assert info["grid"] == [8, 8]  # 8 classes shown, original + 7 draws
    assert matplotlib.image.imread(tmp_path / "a.png").ndim == 3
    assert plot_augmentation_preview(digits_prepared, None, tmp_path / "b.png", "t")["tiles"] == 64


def test_every_figure_of_the_table_has_a_caption_for_snakemake_report():
    from conftest import PROJECT
    from convbench.evaluate.figures import FIGURES

    for figure in FIGURES:
        assert (PROJECT / "workflow" / "report" / figure.caption).read_text().strip(), figure.name


@pytest.mark.parametrize("classes", [2, 10, 100])
def test_confusion_matrix_title_is_whole_and_clear_of_the_colour_bar(classes):
    import matplotlib.pyplot as plt
    from convbench.evaluate.visualization import confusion_figure
    from matplotlib.text import Text

    title = "Confusion matrix — efficientnetb0_transfer on cifar100, variant learning_rate=0.001,batch_size=64, seed 12"
    fig = confusion_figure(np.eye(classes, dtype=int) * 5, [f"class {i}" for i in range(classes)], title)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    [text] = [t for t in fig.findobj(Text) if t.get_text() and " ".join(t.get_text().split()) == title]
    box = text.get_window_extent(renderer)
    colorbar = fig.axes[1].get_window_extent(renderer)  # its axes and the ticks and label beside it
    colorbar = colorbar.union([colorbar, fig.axes[1].get_tightbbox(renderer)])
    assert not box.overlaps(colorbar)
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)  # nothing cut off
    plt.close(fig)


def test_a_long_figure_title_wraps_inside_the_figure():
    """Every figure's title goes through style.suptitle (the report's variant plot cut its title at both edges)."""
    import matplotlib.pyplot as plt
    from convbench.base.style import suptitle

    fig, _ = plt.subplots(figsize=(4, 3), layout="constrained")
    text = suptitle(fig, "Test accuracy per variant — cifar100_with_a_long_name (bars: mean, points: seeds, grey: "
                         "baseline)\nsecond line kept as its own line")
    fig.canvas.draw()
    box = text.get_window_extent(fig.canvas.get_renderer())
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)
    assert text.get_text().count("\n") >= 2 and text.get_text().endswith("\nsecond line kept as its own line")
    plt.close(fig)


def test_the_tutorials_filter_figure_scales_all_filters_together_and_shows_channel_0(tmp_path, monkeypatch):
    """render.style tutorial: one min and max for every tile, input channel 0 (ours: each tile on its own
    scale, an RGB composite)."""
    import convbench.evaluate.visualization as visualization

    model = create_model("simple_cnn", (28, 28, 3), 10)
    layer = find_conv_layer(model)
    kernel = np.zeros(layer.get_weights()[0].shape, np.float32)
    kernel[..., 0, 0], kernel[..., 0, 1], kernel[..., 1, :] = 1.0, 0.1, 5.0  # channel 1 must not show
    kernel[0, 0, 0, :] = -1.0
    layer.set_weights([kernel, layer.get_weights()[1]])
    shown = {}
    real = visualization.mosaic
    monkeypatch.setattr(visualization, "mosaic", lambda tiles, columns, **kw: shown.setdefault("tiles", tiles) is None
                        or real(tiles, columns, **kw))
    info = plot_filters(model, tmp_path / "t.png", "t", style="tutorial")
    tiles = shown.pop("tiles")
    assert info["tiles"] == 32 and tiles.min() == 0.0 and tiles.max() == 1.0
    assert np.allclose(tiles[0, 1, 1], 1.0) and np.allclose(tiles[1, 1, 1], 1.1 / 2) and np.allclose(tiles[2, 1, 1], 0.5)
    assert tiles[1].max() < 0.6  # a weak filter stays weak beside the others
    plot_filters(model, tmp_path / "o.png", "o")  # ours: each tile on its own scale, an RGB composite
    assert np.isclose(shown["tiles"][1].max(), 1.0) and shown["tiles"].shape[-1] == 3


def test_the_tutorials_feature_map_figure_is_every_map_of_the_first_conv_for_one_image(tmp_path, model, digits_prepared):
    images, _ = digits_prepared.scaled("test", np.arange(3))
    info = plot_feature_maps(model, images, tmp_path / "m.png", "t", max_maps=16, style="tutorial")
    assert info == {"layers": ["block1_conv1"], "tiles": 33, "grid": [1, 33]}  # the image and its 32 maps


def test_the_tutorials_convolution_example_is_its_kernel_valid_on_a_5x5_image_then_on_the_real_one(tmp_path, model,
                                                                                                   digits_prepared):
    from convbench.evaluate.visualization import plot_convolution_by_hand
    from convbench.models.anatomy import FIVE_BY_FIVE, TUTORIAL_KERNEL, conv2d_numpy
    from PIL import Image

    worked = conv2d_numpy(FIVE_BY_FIVE[..., None], TUTORIAL_KERNEL[:, :, None, None])[..., 0]
    # by hand: each output is (the window's bottom row) - (its top row), three pixels each
    assert worked.tolist() == [[0, 0, 0], [3, 3, 3], [3, 3, 3]]
    image = digits_prepared.scaled("test", [0])[0][0]
    ours = plot_convolution_by_hand(model, image, tmp_path / "ours.png", "t")
    tutorial = plot_convolution_by_hand(model, image, tmp_path / "tutorial.png", "t", style="tutorial")
    assert ours == tutorial  # the layer's check is the same; the pictures differ
    widths = [Image.open(tmp_path / name).size[0] for name in ("ours.png", "tutorial.png")]
    assert widths[1] > widths[0] * 1.3  # three more panels: the 5x5 image, the kernel, its result
