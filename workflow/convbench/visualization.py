"""The render stage: training curves, confusion matrix, learned filters and feature maps."""

import math

import keras
import matplotlib.pyplot as plt  # picks the file-only Agg backend where there is no display
import numpy as np
import pandas as pd

from .atomic import atomic_path

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
}


def save_figure(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def grid_shape(count):
    """Rows and columns of the most nearly square grid holding `count` tiles."""
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


# ---------------------------------------------------------------- layers


def iter_layers(model):
    """Every layer, descending into nested models (e.g. a keras.applications base)."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from iter_layers(layer)


def conv_layers(model):
    return [layer for layer in iter_layers(model) if isinstance(layer, keras.layers.Conv2D)]


def find_conv_layer(model, name=None):
    """The named conv layer, or the first one; a clear error lists the conv layers there are."""
    layers = conv_layers(model)
    available = ", ".join(layer.name for layer in layers) or "none"
    if name is None:
        if not layers:
            raise ValueError(f"model {model.name!r} has no Conv2D layer to draw")
        return layers[0]
    for layer in layers:
        if layer.name == name:
            return layer
    kind = "is not a Conv2D layer" if any(layer.name == name for layer in iter_layers(model)) else "does not exist"
    raise ValueError(f"layer {name!r} {kind} in model {model.name!r}; conv layers: {available}")


# ---------------------------------------------------------------- figures


def plot_training_curves(history, path, title):
    """The classic two-panel plot: accuracy and loss, train vs validation, per epoch."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
        for ax, metric in zip(axes, ("accuracy", "loss")):
            ax.plot(history["epoch"], history[metric], label="train")
            ax.plot(history["epoch"], history[f"val_{metric}"], label="validation")
            ax.set(title=metric.capitalize(), xlabel="epoch", ylabel=metric)
            ax.legend()
        fig.suptitle(title)
        save_figure(fig, path)


def plot_confusion_matrix(matrix, class_names, path, title):
    """Row-normalized confusion matrix, annotated with the share of each true class."""
    matrix = np.asarray(matrix, float)
    normalized = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4, 0.45 * len(class_names) + 2)
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, ax = plt.subplots(figsize=(size + 1, size), layout="constrained")
        image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
        if len(class_names) <= 20:
            for (row, col), value in np.ndenumerate(normalized):
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if value > 0.5 else "black")
        ticks = range(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=90 if len(class_names) > 10 else 0)
        ax.set_yticks(ticks, class_names)
        ax.set(title=title, xlabel="predicted class", ylabel="true class")
        fig.colorbar(image, ax=ax, label="share of true class")
        save_figure(fig, path)


def plot_filters(model, path, title, layer_name=None, max_filters=64):
    """Kernels of a conv layer as a grid of tiles (RGB when the layer reads 3 channels)."""
    layer = find_conv_layer(model, layer_name)
    kernel = np.asarray(layer.get_weights()[0])  # (height, width, in_channels, filters)
    count = min(kernel.shape[-1], max_filters)
    rows, columns = grid_shape(count)
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(rows, columns, figsize=(1.1 * columns, 1.1 * rows + 0.6), squeeze=False,
                                 layout="constrained")
        for index, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if index >= count:
                continue
            tile = kernel[..., index]
            tile = (tile - tile.min()) / max(np.ptp(tile), 1e-8)
            if tile.shape[-1] == 3:
                ax.imshow(tile, interpolation="nearest")
            else:
                ax.imshow(tile.mean(axis=-1), cmap="gray", interpolation="nearest")
        fig.suptitle(f"{title}\n{layer.name}: {count} of {kernel.shape[-1]} filters")
        save_figure(fig, path)
    return {"layer": layer.name, "tiles": count, "grid": [rows, columns]}


def plot_feature_maps(model, images, path, title, layer_name=None, max_maps=16):
    """Activations of a conv layer for a few fixed test images: one row per image."""
    layer = find_conv_layer(model, layer_name)
    probe = keras.Model(model.inputs, layer.output)
    maps = np.asarray(probe(images, training=False))
    count = min(maps.shape[-1], max_maps)
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(len(images), count + 1, figsize=(1.1 * (count + 1), 1.2 * len(images) + 0.6),
                                 squeeze=False, layout="constrained")
        for row, image in enumerate(images):
            axes[row, 0].imshow(_displayable(image), cmap="gray" if image.shape[-1] == 1 else None)
            axes[row, 0].set_title("input", fontsize=8)
            for channel in range(count):
                axes[row, channel + 1].imshow(maps[row, ..., channel], cmap="viridis")
            for ax in axes[row]:
                ax.set_axis_off()
        fig.suptitle(f"{title}\n{layer.name}: {count} of {maps.shape[-1]} channels")
        save_figure(fig, path)
    return {"layer": layer.name, "tiles": len(images) * (count + 1), "grid": [len(images), count + 1]}


def _displayable(image):
    image = np.asarray(image, float)
    image = (image - image.min()) / max(np.ptp(image), 1e-8)
    return image[..., 0] if image.shape[-1] == 1 else image


def render_experiment(model, data, history_csv, metrics, out, title, settings):
    """All figures of one experiment; returns a manifest of what each PNG holds."""
    history = pd.read_csv(history_csv)
    plot_training_curves(history, out["curves"], f"Training curves — {title}")
    plot_confusion_matrix(metrics["confusion_matrix"], data.class_names, out["confusion"], f"Confusion matrix — {title}")
    x_test, _ = data.scaled("test")
    fixed = x_test[: settings["feature_map_images"]]  # same images for every architecture
    return {
        "curves": {"path": str(out["curves"])},
        "confusion": {"path": str(out["confusion"]), "classes": len(data.class_names)},
        "filters": {"path": str(out["filters"]),
                    **plot_filters(model, out["filters"], f"Learned filters — {title}", max_filters=settings["max_filters"])},
        "feature_maps": {"path": str(out["feature_maps"]),
                         **plot_feature_maps(model, fixed, out["feature_maps"], f"Feature maps — {title}",
                                             max_maps=settings["max_feature_maps"])},
    }
