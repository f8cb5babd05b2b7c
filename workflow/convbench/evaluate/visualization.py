"""An experiment's figures (drawn by the evaluate_model job): training curves, confusion matrix, learned
filters, feature maps, Grad-CAM, misclassified images; and the augmentation preview."""

import math
from pathlib import Path

import keras
import matplotlib.pyplot as plt  # picks the file-only Agg backend where there is no display
import numpy as np
import pandas as pd
import tensorflow as tf
from matplotlib.ticker import MaxNLocator

from ..base.atomic import atomic_path
from ..base.style import STYLE, displayable, png_bytes, suptitle
from ..models.anatomy import (
    FIVE_BY_FIVE,
    SOBEL_X,
    TUTORIAL_KERNEL,
    conv2d_numpy,
    conv_layers,
    find_conv_layer,
    first_conv,
    first_conv_by_hand,
    iter_layers,
    spatial_layers,
)
from .figures import NAMES as FIGURE_NAMES
from .inference import fit_to_model


def save_figure(fig, path):
    data = png_bytes(fig)
    plt.close(fig)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def grid_shape(count):
    """Rows and columns of the most nearly square grid holding `count` tiles."""
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def normalised(tiles):
    """Each tile (first axis) scaled to [0, 1] on its own, as imshow would show it alone."""
    tiles = np.asarray(tiles, float)
    axes = tuple(range(1, tiles.ndim))
    low = tiles.min(axis=axes, keepdims=True)
    return (tiles - low) / np.maximum(tiles.max(axis=axes, keepdims=True) - low, 1e-8)


def mosaic(tiles, columns, min_tile_px=12):
    """RGB tiles (n, height, width, 3) in [0, 1] as one image: a grid of `columns` with white gaps.

    One image instead of one axes per tile: matplotlib lays out each axes in ~10 ms, so a grid of
    130 feature maps took 4 s. Tiles smaller than `min_tile_px` (3x3 kernels) are magnified by
    pixel repetition, so the gaps stay thin beside them.
    """
    count, height, width, channels = tiles.shape
    scale = max(1, math.ceil(min_tile_px / min(height, width)))
    tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    height, width, gap = height * scale, width * scale, max(2, min(height, width) * scale // 6)
    rows = math.ceil(count / columns)
    canvas = np.ones((rows * (height + gap) - gap, columns * (width + gap) - gap, channels))
    for index, tile in enumerate(tiles):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        canvas[top : top + height, left : left + width] = tile
    return canvas


# ---------------------------------------------------------------- layers


def block_conv_layers(model, limit=4):
    """The first conv layer of each block, a block being a run of conv layers at one spatial size.

    Works on any architecture (pooling or strided convs end a block), nested bases included.
    """
    firsts, size = [], None
    for layer in conv_layers(model):
        layer_size = tuple(layer.output.shape[1:3])
        if layer_size != size:
            firsts.append(layer)
            size = layer_size
    return firsts[:limit]


# ---------------------------------------------------------------- figures


def plot_training_curves(history, path, title):
    """The classic two-panel plot: accuracy and loss, train vs validation, per epoch."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
        for ax, metric in zip(axes, ("accuracy", "loss")):
            ax.plot(history["epoch"], history[metric], label="train")
            ax.plot(history["epoch"], history[f"val_{metric}"], label="validation")
            ax.set(title=metric.capitalize(), xlabel="epoch", ylabel=metric)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
            ax.legend()
        suptitle(fig, title)
        save_figure(fig, path)


def plot_confusion_matrix(matrix, class_names, path, title):
    """Row-normalized confusion matrix, annotated with the share of each true class."""
    fig = confusion_figure(matrix, class_names, title)
    save_figure(fig, path)
    return {"classes": len(class_names)}


def confusion_figure(matrix, class_names, title):
    matrix = np.asarray(matrix, float)
    normalized = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4, 0.45 * len(class_names) + 2)
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, ax = plt.subplots(figsize=(size + 1, size), layout="constrained")
        image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
        if len(class_names) <= 20:
            for (row, col), value in np.ndenumerate(normalized):
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if value > 0.5 else "black")
        ticks = range(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=90 if len(class_names) > 10 else 0)
        ax.set_yticks(ticks, class_names)
        ax.set(xlabel="predicted class", ylabel="true class")
        fig.colorbar(image, ax=ax, label="share of true class")
        # Above matrix and colour bar both (an axes title is centred on the matrix and ran under the bar),
        # wrapped to the figure's width.
        suptitle(fig, title)
    return fig


def plot_filters(model, path, title, layer_name=None, max_filters=64, style="convbench"):
    """Kernels of a conv layer as a grid of tiles: each scaled on its own, RGB when the layer reads 3 channels
    (else the mean over them); style "tutorial": all scaled together (one min and max), input channel 0, grey."""
    layer = find_conv_layer(model, layer_name)
    kernel = np.asarray(layer.get_weights()[0])  # (height, width, in_channels, filters)
    count = min(kernel.shape[-1], max_filters)
    rows, columns = grid_shape(count)
    tiles = np.moveaxis(kernel[..., :count], -1, 0)  # (filters, height, width, in_channels)
    if style == "tutorial":
        tiles = tiles[..., :1]
        shown = (tiles - tiles.min()) / max(float(tiles.max() - tiles.min()), 1e-8)  # one scale for all
        what = "input channel 0, all filters on one scale"
    else:
        if tiles.shape[-1] != 3:  # grey: the mean over the input channels
            tiles = tiles.mean(axis=-1, keepdims=True)
        shown = normalised(tiles)
        what = "each filter on its own scale"
    shown = np.repeat(shown, 3, axis=-1) if shown.shape[-1] == 1 else shown
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, ax = plt.subplots(figsize=(1.1 * columns, 1.1 * rows + 0.6), layout="constrained")
        ax.imshow(mosaic(shown, columns), interpolation="nearest")
        ax.set_axis_off()
        suptitle(fig, f"{title}\n{layer.name}: {count} of {kernel.shape[-1]} filters, {what}")
        save_figure(fig, path)
    return {"layer": layer.name, "tiles": count, "grid": [rows, columns]}


def layer_outputs(model, layers):
    """A function image batch -> [outputs of `layers`..., predictions], nested base models included.

    Functional models are probed through their graph. Sequential models and transfer models (a
    keras.applications base nested in a chain of layers) are run layer by layer, descending into
    the nested model: a loaded Sequential's layer nodes are not connected to its outputs.
    """
    top = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    top_ids = {id(layer) for layer in top}
    if not isinstance(model, keras.Sequential) and all(id(layer) in top_ids for layer in layers):
        probe = keras.Model(model.inputs, [layer.output for layer in layers] + list(model.outputs))
        return lambda x, training=False: probe(x, training=training)

    steps = []  # per top-level layer: (callable returning [wanted outputs..., output], wanted layers)
    for layer in top:
        if any(layer is wanted for wanted in layers):
            steps.append((lambda x, training, layer=layer: [layer(x, training=training)] * 2, [layer]))
        elif hasattr(layer, "layers") and (inside := [w for w in layers if any(w is l for l in iter_layers(layer))]):
            steps.append((layer_outputs(layer, inside), inside))
        else:
            steps.append((lambda x, training, layer=layer: [layer(x, training=training)], []))

    def run(x, training=False):
        found = {}
        for step, wanted in steps:
            *outputs, x = step(x, training=training)
            found.update({id(layer): output for layer, output in zip(wanted, outputs)})
        return [found[id(layer)] for layer in layers] + [x]

    return run


def plot_feature_maps(model, images, path, title, max_maps=16, max_blocks=4, layer_names=None, style="convbench"):
    """Activations for fixed test images of the layers named in `layer_names`, by default the first
    conv layer of each block: a row per image and layer. Style "tutorial": every map of one layer (the first
    conv layer, or the first named) for the first image."""
    layers = spatial_layers(model, layer_names) if layer_names else block_conv_layers(model, max_blocks)
    if style == "tutorial":
        layers, images = layers[:1], images[:1]
    *maps, _ = layer_outputs(model, layers)(images)
    count = max(int(m.shape[-1]) for m in maps)
    count = count if style == "tutorial" else min(count, max_maps)
    rows = len(images) * len(layers)
    viridis = plt.get_cmap("viridis")
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(rows, 2, figsize=(0.85 * (count + 1) + 0.3, 1.05 * rows + 0.7), squeeze=False,
                                 layout="constrained", width_ratios=[1, count])
        for index, image in enumerate(images):
            for block, (layer, activation) in enumerate(zip(layers, maps)):
                picture, strip = axes[index * len(layers) + block]
                picture.imshow(displayable(image), cmap="gray" if image.shape[-1] == 1 else None)
                picture.set_title(f"image {index + 1}\n{layer.name}", fontsize=7)
                channels = np.moveaxis(np.asarray(activation[index])[..., :count], -1, 0)
                strip.imshow(mosaic(viridis(normalised(channels))[..., :3], columns=count), aspect="equal")
                picture.set_anchor("E")  # side by side, the spare width to the right of the strip
                strip.set_anchor("W")
                picture.set_axis_off()
                strip.set_axis_off()
        chosen = "layers named in render.feature_map_layers" if layer_names else "first conv layer of each block"
        suptitle(fig, f"{title}\n{chosen}: {', '.join(layer.name for layer in layers)}")
        save_figure(fig, path)
    return {"layers": [layer.name for layer in layers], "tiles": rows * (count + 1), "grid": [rows, count + 1]}


def grad_cam_layer(model):
    """The last conv layer whose output is at least 2x2: a 1x1 map (the end of a deep network on small
    inputs) cannot say where the network looked, it would paint one uniform overlay."""
    layers = conv_layers(model)
    with_space = [layer for layer in layers if min(layer.output.shape[1:3]) >= 2]
    return (with_space or layers)[-1]


def grad_cam(model, images, layer=None):
    """Grad-CAM heatmaps (Selvaraju et al. 2017) for the predicted class, at grad_cam_layer.

    Returns heatmaps in [0, 1] at the layer's resolution and the predicted classes.
    """
    layer = layer or grad_cam_layer(model)
    forward = layer_outputs(model, [layer])
    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        activation, predictions = forward(images)
        predicted = tf.argmax(predictions, axis=1)
        score = tf.gather(predictions, predicted, batch_dims=1)
    gradients = tape.gradient(score, activation)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)  # importance of each channel
    heat = tf.nn.relu(tf.reduce_sum(weights * activation, axis=-1)).numpy()
    heat /= np.maximum(heat.max(axis=(1, 2), keepdims=True), 1e-12)
    return heat, predicted.numpy(), layer.name


def plot_grad_cam(model, images, labels, class_names, path, title):
    """Each image with its Grad-CAM heatmap overlaid, titled true / predicted class."""
    heat, predicted, layer_name = grad_cam(model, images)
    upscaled = tf.image.resize(heat[..., np.newaxis], images.shape[1:3]).numpy()[..., 0]
    rows, columns = grid_shape(len(images))
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.2 * rows + 0.6), squeeze=False,
                                 layout="constrained")
        for index, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if index >= len(images):
                continue
            ax.imshow(displayable(images[index]), cmap="gray" if images.shape[-1] == 1 else None)
            ax.imshow(upscaled[index], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_title(f"true {class_names[labels[index]]} / pred {class_names[predicted[index]]}", fontsize=8)
        suptitle(fig, f"{title}\nGrad-CAM at {layer_name}")
        save_figure(fig, path)
    # the heat maps themselves (at most 28x28, 2 decimals: a few kB), so that the report can put every
    # model's look at the same test images side by side
    stored = tf.image.resize(heat[..., np.newaxis], np.minimum(heat.shape[1:3], 28)).numpy()[..., 0]
    return {"layer": layer_name, "tiles": len(images), "grid": [rows, columns],
            "heat": np.round(stored, 2).tolist(), "predicted": predicted.tolist()}


def plot_misclassified(images, labels, probabilities, class_names, path, title, limit=16):
    """The most confidently wrong test images, titled true / predicted class and confidence. `images`:
    the test images, or a function giving those at some indices (only the shown ones are read)."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:limit]
    shown = dict(zip(wrong, images(wrong) if callable(images) else images[wrong]))
    rows, columns = grid_shape(max(len(wrong), 1))
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.1 * rows + 0.6), squeeze=False,
                                 layout="constrained")
        for ax in axes.flat:
            ax.set_axis_off()
        for ax, index in zip(axes.flat, wrong):
            ax.imshow(displayable(shown[index]), cmap="gray" if shown[index].shape[-1] == 1 else None)
            ax.set_title(f"true {class_names[labels[index]]}\npred {class_names[predicted[index]]} "
                         f"({probabilities[index, predicted[index]]:.0%})", fontsize=8)
        if not len(wrong):
            axes.flat[0].text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
        suptitle(fig, f"{title}\n{len(wrong)} most confident of {int((predicted != labels).sum())} errors")
        save_figure(fig, path)
    return {"tiles": len(wrong), "errors": int((predicted != labels).sum())}


def plot_convolution_by_hand(model, image, path, title, style="convbench"):
    """The first convolution redone in NumPy: an edge kernel, then the model's first learned
    filter applied by NumPy and by the layer itself, and their difference. The edge kernel is Sobel x with
    same padding; style "tutorial": the tutorial's [[-1,-1,-1],[0,0,0],[1,1,1]] with valid padding, first
    on a 5x5 image (each output value written in its cell), then on the real one."""
    layer_input, by_hand, by_layer, facts = first_conv_by_hand(model, image)
    grey = layer_input.mean(axis=-1, keepdims=True)
    tutorial = style == "tutorial"
    kernel, padding = (TUTORIAL_KERNEL, "valid") if tutorial else (SOBEL_X, "same")
    edges = conv2d_numpy(grey, kernel[:, :, np.newaxis, np.newaxis], padding=padding)[..., 0]
    learned = first_conv(model).get_weights()[0][..., 0].mean(axis=-1)  # filter 0, averaged over input channels
    example = []
    if tutorial:
        worked = conv2d_numpy(FIVE_BY_FIVE[..., np.newaxis], TUTORIAL_KERNEL[:, :, np.newaxis, np.newaxis])[..., 0]
        example = [(FIVE_BY_FIVE, "a 5x5 image", "gray"), (TUTORIAL_KERNEL, "the tutorial's kernel", "RdBu_r"),
                   (worked, "its 3x3 result (valid)", "RdBu_r")]
    panels = [*example, (displayable(layer_input), "what the first conv layer receives", "gray"),
              (edges, "the same kernel by NumPy, valid" if tutorial else "Sobel x-edges by NumPy", "RdBu_r"),
              (learned, "learned filter 0", "gray"),
              (by_hand[..., 0], "filter 0 applied by NumPy", "viridis"),
              (by_layer[..., 0], f"by the layer {facts['layer']}", "viridis"),
              (np.abs(by_hand[..., 0] - by_layer[..., 0]), "|NumPy − layer|", "magma")]
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 3.0), layout="constrained")
        for ax, (picture, label, cmap) in zip(axes, panels):
            ax.imshow(picture, cmap=cmap if picture.ndim == 2 else None, interpolation="nearest")
            ax.set_title(label, fontsize=8)
            ax.set_axis_off()
            if any(picture is shown for shown, *_ in example):  # the worked example: its numbers
                for (row, column), value in np.ndenumerate(picture):
                    ax.text(column, row, f"{value:g}", ha="center", va="center", fontsize=8, color="tab:orange")
        suptitle(fig, f"{title}\nlargest |difference| over all {by_hand.shape[-1]} filters: "
                     f"{facts['max_abs_difference']:.1e} ({facts['precision']})")
        save_figure(fig, path)
    return facts


def plot_augmentation_preview(data, augmentation, path, title, per_row=7):
    """One training image per class (up to 8): the original, then augmented draws of it."""
    labels = data.labels("train")
    picks = [np.flatnonzero(labels == label)[0] for label in np.unique(labels)[:8]]
    images = dict(zip(picks, data.scaled("train", picks)[0]))  # only these are read
    rows = len(picks)
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(rows, per_row + 1, figsize=(1.2 * (per_row + 1), 1.25 * rows + 0.7), squeeze=False,
                                 layout="constrained")
        for row, index in enumerate(picks):
            batch = np.repeat(images[index][np.newaxis], per_row, axis=0)
            augmented = np.asarray(augmentation(batch, training=True)) if augmentation is not None else batch
            axes[row, 0].set_title(data.class_names[labels[index]], fontsize=8)
            for ax, image in zip(axes[row], [images[index], *augmented]):
                ax.imshow(displayable(image), cmap="gray" if image.shape[-1] == 1 else None)
                ax.set_axis_off()
        state = "as trained" if augmentation is not None else "augmentation is off (training.augmentation)"
        suptitle(fig, f"{title}\noriginal, then {per_row} augmented draws — {state}")
        save_figure(fig, path)
    return {"tiles": rows * (per_row + 1), "grid": [rows, per_row + 1]}


def render_experiment(model, data, history_csv, metrics, predictions, out, title, settings, filter_layer=None,
                      feature_map_layers=None):
    """Every figure of convbench.evaluate.figures for one experiment, into out[name]; returns a manifest of
    what each PNG holds (figures.json; file names relative to its folder, which may be moved)."""
    y_test = data.labels("test")
    shown = min(len(y_test), max(settings["feature_map_images"], settings["gradcam_images"]))
    first = data.scaled("test", np.arange(shown))[0]  # only the images the figures show are read
    # the first test images (the same for every architecture), as the model takes them (input_size)
    fixed = fit_to_model(first[: settings["feature_map_images"]], model)
    cam_count = settings["gradcam_images"]
    style = settings.get("style", "convbench")  # evaluation settings leave the default out
    draw = {
        "curves": lambda path: plot_training_curves(pd.read_csv(history_csv), path, f"Training curves — {title}"),
        "confusion": lambda path: plot_confusion_matrix(metrics["confusion_matrix"], data.class_names, path,
                                                        f"Confusion matrix — {title}"),
        "filters": lambda path: plot_filters(model, path, f"Learned filters — {title}", filter_layer,
                                             settings["max_filters"], style=style),
        "feature_maps": lambda path: plot_feature_maps(model, fixed, path, f"Feature maps — {title}",
                                                       settings["max_feature_maps"], layer_names=feature_map_layers,
                                                       style=style),
        "gradcam": lambda path: plot_grad_cam(model, fit_to_model(first[:cam_count], model), y_test[:cam_count],
                                              data.class_names, path, f"Where the network looks — {title}"),
        "by_hand": lambda path: plot_convolution_by_hand(model, fixed[0], path, f"Convolution by hand — {title}",
                                                         style=style),
        "misclassified": lambda path: plot_misclassified(lambda index: data.scaled("test", index)[0], y_test,
                                                         predictions["probabilities"], data.class_names, path,
                                                         f"Misclassified — {title}"),
    }
    if set(draw) != set(FIGURE_NAMES):
        raise RuntimeError(f"convbench.evaluate.figures lists {sorted(FIGURE_NAMES)}, "
                           f"render_experiment draws {sorted(draw)}")
    return {name: {"file": Path(out[name]).name, **(draw[name](out[name]) or {})} for name in FIGURE_NAMES}
