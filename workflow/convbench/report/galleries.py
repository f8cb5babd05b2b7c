"""Images in the report: per-model figure galleries (the median seed shown), training samples, and the
same test images for every model (the hardest ones, Grad-CAM side by side)."""

import os
from pathlib import Path

import numpy as np

from ..base.atomic import read_json
from ..base.style import suptitle
from ..data.prepared import SplitImages, prepared_beside
from .page import image_tag


def representatives(summary):
    """Per dataset and compared model: the experiment whose test accuracy is the median over its
    seeds (the lower seed on a tie), and the other seeds' experiments."""
    picks = []
    for _, runs in summary.groupby(["dataset", "model"], sort=False):
        distance = (runs["accuracy"] - runs["accuracy"].median()).abs()
        order = runs.assign(distance=distance).sort_values(["distance", "seed"])
        picks.append((order.iloc[0], order.iloc[1:].sort_values("seed")))
    return picks


def gallery(summary, kind, report_dir="results"):
    """One folded block per dataset and compared model with its representative seed's figure
    inlined; the other seeds' figures are linked (relative to report.html, which lives in results/)."""
    blocks = []
    for experiment, others in representatives(summary):
        figures = Path(experiment.experiment_dir) / "figures"
        path = figures / read_json(figures / "figures.json")[kind]["file"]
        seeds = len(others) + 1
        note = f"seed {experiment.seed}" + (f", the median of {seeds} seeds" if seeds > 2 else "")
        links = ", ".join(
            f'<a href="{os.path.relpath(Path(other.experiment_dir) / "figures" / path.name, report_dir)}">'
            f"seed {other.seed}</a>" for other in others.itertuples())
        blocks.append(
            f"<details><summary><b>{experiment.model}</b> on {experiment.dataset} ({note})</summary>"
            f"{image_tag(path, alt=f'{kind} of {experiment.model} on {experiment.dataset}, seed {experiment.seed}')}"
            + (f"<p>Other seeds: {links}</p>" if links else "") + "</details>")
    return "\n".join(blocks)


def dataset_test_images(dataset_manifests, dataset):
    """Test images (uint8, read on demand), their labels and the class names of `dataset` from its first
    prepared copy: the split depends only on the labels and split_seed, so every input size holds the same
    test images in the same order."""
    for path in dataset_manifests:
        if read_json(path)["dataset"] == dataset:
            data = prepared_beside(path)
            return SplitImages(data, "test"), data.labels("test"), data.class_names
    raise ValueError(f"no prepared manifest of dataset {dataset!r} among {list(dataset_manifests)}")


def shortened(name, limit=10):
    """A class name that fits a one-inch cell (CIFAR-100 has 'aquarium_fish', folders may be longer)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def hardest_images(predictions, labels, count=8):
    """Indices of the `count` test images most models get wrong (`predictions`: model -> class
    probabilities); ties go to the lowest mean probability of the true class. Models no better than
    always answering the most frequent class do not vote (they get nearly every image wrong and would
    make every image look hard), unless no model is better."""
    baseline = np.bincount(labels).max() / len(labels)
    learned = {model: p for model, p in predictions.items() if (p.argmax(axis=1) == labels).mean() > baseline}
    predictions = learned or predictions
    wrong = sum((p.argmax(axis=1) != labels).astype(int) for p in predictions.values())
    truth = np.mean([p[np.arange(len(labels)), labels] for p in predictions.values()], axis=0)
    return np.lexsort((truth, -wrong))[:count]


def plot_hardest_images(summary, dataset, test_images, count=8):
    """The test images the compared models get wrong most often (hardest_images), once at the top, and
    below them one row per model (its representative seed): the class it predicts and its confidence,
    green when right, red when wrong. `test_images`: dataset_test_images' (images, labels, class names)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from ..base.style import STYLE, displayable

    images, _, class_names = test_images
    picks = [experiment for experiment, _ in representatives(summary) if experiment.dataset == dataset]
    predictions, labels = {}, None
    for experiment in picks:
        with np.load(Path(experiment.experiment_dir) / "test_predictions.npz") as data:
            predictions[experiment.model], labels = data["probabilities"], data["labels"]
    chosen = hardest_images(predictions, labels, count)
    predicted = np.array([p[chosen].argmax(axis=1) for p in predictions.values()])
    confidence = np.array([p[chosen].max(axis=1) for p in predictions.values()])
    right = predicted == labels[chosen]
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, (top, table) = plt.subplots(2, 1, figsize=(1.1 * len(chosen) + 2.6, 1.5 + 0.42 * len(picks) + 0.6),
                                         height_ratios=[1.5, 0.42 * len(picks)], layout="constrained")
        top.set_axis_off()
        for column, index in enumerate(chosen):
            inset = top.inset_axes([column / len(chosen), 0, 1 / len(chosen), 1])
            inset.imshow(displayable(images[index]), cmap="gray" if images.shape[-1] == 1 else None)
            inset.set_title(f"#{index}\ntrue {shortened(class_names[labels[index]])}", fontsize=8)
            inset.set_axis_off()
        table.imshow(right, cmap=ListedColormap(["#f4c7c3", "#c9e8c9"]), vmin=0, vmax=1, aspect="auto")
        for (row, column), name in np.ndenumerate(predicted):
            table.text(column, row, f"{shortened(class_names[name])}\n{confidence[row, column]:.0%} sure", ha="center",
                       va="center", fontsize=8, linespacing=1.1)
        table.set_xticks([])
        table.set_yticks(range(len(predictions)), list(predictions), fontsize=8)
        table.tick_params(length=0)
        for spine in table.spines.values():
            spine.set_visible(False)
        suptitle(fig, f"The hardest test images of {dataset} for every model: predicted class and confidence "
                     "(green right, red wrong)", fontsize=10)
    return fig


def plot_gradcam_side_by_side(summary, dataset, test_images):
    """Where each compared model looks on the same test images (the first test images, as every
    experiment's Grad-CAM figure uses): one row per model's representative seed, the heat map that
    its evaluate job stored in figures.json over each image, titled with its prediction.
    `test_images`: dataset_test_images' (images, labels, class names)."""
    import matplotlib.pyplot as plt

    from ..base.style import STYLE, displayable

    images, labels, class_names = test_images
    rows = []
    for experiment, _ in representatives(summary):
        if experiment.dataset == dataset:
            cam = read_json(Path(experiment.experiment_dir) / "figures" / "figures.json")["gradcam"]
            if "heat" in cam:  # evaluated before the heat maps were stored: no row
                rows.append((experiment.model, cam))
    if not rows:
        return None
    count = min(len(cam["heat"]) for _, cam in rows)
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(len(rows), count, figsize=(0.95 * count + 1.8, 1.0 * len(rows) + 0.7), squeeze=False,
                                 layout="constrained")
        for row, (model, cam) in enumerate(rows):
            for column in range(count):
                ax = axes[row, column]
                image = displayable(images[column])
                height, width = image.shape[:2]
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
                ax.imshow(np.asarray(cam["heat"][column]), cmap="jet", alpha=0.45, vmin=0, vmax=1,
                          extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="bilinear")
                ax.set_xticks([]), ax.set_yticks([])
                guess = cam["predicted"][column]
                ax.set_title(shortened(class_names[guess]), fontsize=7, pad=2, color="black" if guess == labels[column] else "tab:red")
            axes[row, 0].set_ylabel(model, rotation=0, ha="right", va="center", fontsize=8)
        for column, ax in enumerate(axes[-1]):
            ax.set_xlabel(f"true {shortened(class_names[labels[column]])}", fontsize=7)
        suptitle(fig, f"Where every model looks on the same test images of {dataset} (Grad-CAM; title: predicted class, red when wrong)",
                     fontsize=10)
    return fig


def plot_samples(manifest_path, per_class=6):
    """The first training images of every class, one row per class."""
    import matplotlib.pyplot as plt

    from ..base.style import STYLE, displayable

    data = prepared_beside(manifest_path)
    manifest, labels, images = data.manifest, data.labels("train"), SplitImages(data, "train")
    names = manifest["class_names"]
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(len(names), per_class, figsize=(0.9 * per_class + 1, 0.9 * len(names) + 0.5),
                                 squeeze=False, layout="constrained")
        for row, name in enumerate(names):
            for ax, index in zip(axes[row], np.flatnonzero(labels == row)[:per_class]):
                ax.imshow(displayable(images[index]), cmap="gray" if images.shape[-1] == 1 else None)
            for ax in axes[row]:
                ax.set_xticks([]), ax.set_yticks([])
            axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center")
        suptitle(fig, f"{manifest['dataset']}: training samples at {'x'.join(map(str, manifest['input_shape']))}")
    return fig
