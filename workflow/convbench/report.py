"""The report stage: helpers the report notebook calls, and executing/rendering it."""

import base64
import html
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path, read_json
from .metrics import METRICS, leaderboard_columns
from .prepared import SplitImages, prepared_beside
from .style import suptitle
from .summary import SETTING_PREFIX

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent.parent / "notebooks" / "templates"


# ---------------------------------------------------------------- tables


def load_summary(path):
    """summary.csv with a `model` column naming what is compared: the architecture, and its
    variant when the study has several (`bn_cnn · augmented`). Variants keep the study's order."""
    summary = pd.read_csv(path, dtype={"variant": str}, keep_default_na=False, na_values=[""])
    summary["variant_changes"] = summary["variant_changes"].fillna("")
    summary["variant"] = pd.Categorical(summary["variant"], categories=list(dict.fromkeys(summary["variant"])))
    several = summary["variant"].nunique() > 1
    summary["model"] = summary["architecture"] + (" · " + summary["variant"].astype(str) if several else "")
    return summary


def leaderboard(summary, metrics_table=METRICS):
    """Per dataset, architecture and variant: the metrics table's aggregations over seeds (mean
    and std of accuracy and loss, ...), sorted by mean test accuracy."""
    if "variant" not in summary:
        summary = summary.assign(variant="default")
    grouped = summary.groupby(["dataset", "architecture", "variant"], observed=True)
    inputs = {"input": ("input_shape", "first")} if "input_shape" in summary else {}  # architectures run at different sizes
    board = grouped.agg(
        seeds=("seed", "count"),
        **inputs,
        **{column: (metric.name, how) for column, metric, how in leaderboard_columns(metrics_table)},
    ).reset_index()
    board["variant"] = board["variant"].astype(str)
    return board.sort_values(["dataset", "accuracy_mean"], ascending=[True, False], ignore_index=True)


# Columns with_references adds: (header, format)
REFERENCE_COLUMNS = {
    "published_accuracy": ("published accuracy", "{:.2%}"),
    "gap": ("gap to published (points)", "{:+.2f}"),
    "published_source": ("published in", "{}"),
}


def with_references(board, references):
    """The leaderboard with the published accuracy of every (architecture, dataset) the study's
    `references` give one for, its source, and the gap: mean measured minus published accuracy in
    percentage points. Unchanged when the study gives none."""
    found = [references.get(arch, {}).get(dataset) for arch, dataset in zip(board["architecture"], board["dataset"])]
    if not any(found):
        return board
    board = board.copy()
    position = board.columns.get_loc("accuracy_std") + 1
    published = [reference["accuracy"] if reference else None for reference in found]
    board.insert(position, "published_accuracy", pd.array(published, dtype="Float64"))
    board.insert(position + 1, "gap", 100 * (board["accuracy_mean"] - board["published_accuracy"]))
    board.insert(position + 2, "published_source", [reference["source"] if reference else None for reference in found])
    return board


def formatted(fmt, value):
    """A value shown by a metrics-table format: a format string or a function."""
    return fmt(value) if callable(fmt) else fmt.format(value)


# References columns too wide for the first screen: in the full leaderboard only
WIDE_REFERENCE_COLUMNS = {"published_source"}


def style_leaderboard(board, metrics_table=METRICS, full=True):
    """Formatted by the metrics table, human headers, the best value of each ranked column
    highlighted per dataset; the variant column only when the study compares variants. Not `full`:
    the first-screen version, without the metrics the table keeps off it (so that it fits 1280 px)."""
    if board["variant"].nunique() == 1:
        board = board.drop(columns="variant")
    if not full:
        off = {column for column, metric, _ in leaderboard_columns(metrics_table) if not metric.first_screen}
        board = board.drop(columns=[column for column in board if column in off | WIDE_REFERENCE_COLUMNS])
        metrics_table = [metric for metric in metrics_table if metric.first_screen]
    columns = leaderboard_columns(metrics_table)
    formats = {column: metric.format for column, metric, _ in columns}
    formats.update({column: fmt for column, (_, fmt) in REFERENCE_COLUMNS.items() if column in board})
    if "variant" in board:  # sweep names (learning_rate=0.001,batch_size=64) may break after = and ,
        formats["variant"] = lambda name: html.escape(name).replace("=", "=<wbr>").replace(",", ",<wbr>")
    styler = board.style.format(formats, na_rep="–")
    # mean ± std in one cell (the std column hidden): two columns fewer for the 1280-px window; the
    # mean stays the cell's number, so highlighting and sorting still go by it
    paired = [(column, column[: -len("_mean")] + "_std", metric) for column, metric, how in columns
              if how == "mean" and metric.aggregate == "mean_std"]
    for mean, std, metric in paired:
        for row in board.index:
            if pd.notna(board.at[row, mean]) and pd.notna(board.at[row, std]):
                spread = formatted(metric.format, board.at[row, std])
                styler = styler.format(lambda value, fmt=metric.format, spread=spread: f"{formatted(fmt, value)}\u00a0±\u00a0{spread}",
                                       subset=([row], [mean]))
    for dataset in board["dataset"].unique():
        rows = board.index[board["dataset"] == dataset]
        for column, metric, how in columns:
            if how == "std" or metric.higher_is_better is None or not metric.highlight:
                continue
            best = styler.highlight_max if metric.higher_is_better else styler.highlight_min
            styler = best(subset=(rows, [column]), props="font-weight:bold;background-color:#d4edda")
    headers = {column: metric.label if how == "first" else f"{metric.label} ({how})" for column, metric, how in columns}
    headers.update({mean: f"{metric.label} (mean ± std)" for mean, _, metric in paired})
    headers.update({column: header for column, (header, _) in REFERENCE_COLUMNS.items()})
    headers["input"] = "input (H×W×C)"
    shown = [column for column in board.columns if column not in {std for _, std, _ in paired}]
    return (styler.hide(axis="index").hide([std for _, std, _ in paired], axis=1)
            .relabel_index([headers.get(column, column) for column in shown], axis=1))


def experiments_table(summary, metrics_table=METRICS):
    """Every experiment, one row each: identity, the metrics marked for it, input shape."""
    identity = ["dataset", "architecture"] + (["variant"] if summary["variant"].nunique() > 1 else []) + ["seed"]
    shown = [metric for metric in metrics_table if metric.in_experiments_table]
    # top-5 only exists with more than 10 classes: a column with no value is left out
    table = summary[identity + [metric.name for metric in shown] + ["input_shape"]].dropna(axis=1, how="all")
    formats = {metric.name: metric.format for metric in shown if metric.name in table}
    labels = {metric.name: metric.label for metric in shown}
    return (table.style.format(formats, na_rep="–").hide(axis="index")
            .relabel_index([labels.get(column, column.replace("_", " ")) for column in table.columns], axis=1)
            .set_table_attributes('class="experiments"'))


def exports_table(summary):
    """Every exported artifact of every experiment with its size and agreement check
    (export/checks.json, written by the export job), failed checks highlighted."""
    rows = []
    for experiment in summary.itertuples(index=False):
        checks = read_json(Path(experiment.experiment_dir) / "export" / "checks.json")
        for name, check in checks.items():
            rows.append({"dataset": experiment.dataset, "model": experiment.model, "seed": experiment.seed,
                         "format": name, "file": f"export/{check['path']}", "size": _megabytes(check["bytes"]),
                         "check against Keras": check["summary"], "passed": "yes" if check["passed"] else "NO"})
    table = pd.DataFrame(rows)
    return (table.style.hide(axis="index")
            .map(lambda value: "background-color: #f8d0d0; font-weight: bold" if value == "NO" else "", subset=["passed"]))


def _megabytes(size):
    return f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


# ---------------------------------------------------------------- figures


IDENTITY = ["dataset", "architecture", "variant", "seed", "model"]


def load_histories(summary):
    """Training histories of all experiments in one long frame, keyed by the experiment's
    identity as summary.csv records it (never parsed from folder names)."""
    frames = []
    for experiment in summary[IDENTITY + ["experiment_dir"]].itertuples(index=False):
        frame = pd.read_csv(Path(experiment.experiment_dir) / "history.csv")
        frames.append(frame.assign(**{key: getattr(experiment, key) for key in IDENTITY}))
    return pd.concat(frames, ignore_index=True)


OVERLAY_LIMIT = 6  # more compared models than this: one panel each (a 12-line legend covers the plot)
PANEL_COLUMNS = 4  # small multiples wrap into rows of this many panels


def panel_grid(count, width, height, columns=PANEL_COLUMNS, **options):
    """(figure, rows × columns array of axes) for `count` panels of width × height inches, in rows of
    at most `columns`; the unused panels of the last row hidden. Call inside the plot's rc_context."""
    import matplotlib.pyplot as plt

    columns = max(1, min(count, columns))
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows + 0.5), squeeze=False,
                             layout="constrained", **options)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes


def curve_figures(histories, dataset):
    """(figure, alt text) of the training curves of every compared model on one dataset: all in one
    overlay while they are few, else small multiples of accuracy and of loss."""
    models = histories.loc[histories["dataset"] == dataset, "model"].nunique()
    if models <= OVERLAY_LIMIT:
        return [(plot_curves_overlay(histories, dataset), f"Validation and training accuracy and loss per epoch on {dataset}")]
    return [(plot_curves_small_multiples(histories, dataset, metric),
             f"Validation and training {metric} per epoch on {dataset}, one panel per model") for metric in ("accuracy", "loss")]


def _seed_curves(runs):
    """Mean, min and max over seeds per epoch of one model's history columns."""
    by_epoch = runs.groupby("epoch")
    return (by_epoch.agg(how, numeric_only=True) for how in ("mean", "min", "max"))


def plot_curves_overlay(histories, dataset):
    """Validation (solid) and training (dotted) accuracy and loss of every compared model on one
    dataset: the mean over seeds, with the validation curve's min-max band over seeds; integer
    epoch ticks; one legend below the plots."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from .style import STYLE

    data = histories[histories["dataset"] == dataset]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
        for model, runs in data.groupby("model", sort=False, observed=True):
            mean, low, high = _seed_curves(runs)
            for ax, metric in zip(axes, ("accuracy", "loss")):
                (line,) = ax.plot(mean.index, mean[f"val_{metric}"], label=model)
                if runs["seed"].nunique() > 1:
                    ax.fill_between(mean.index, low[f"val_{metric}"], high[f"val_{metric}"], color=line.get_color(),
                                    alpha=0.15, linewidth=0)
                ax.plot(mean.index, mean[metric], color=line.get_color(), linestyle=":", alpha=0.7)
        for ax, metric in zip(axes, ("accuracy", "loss")):
            ax.set(title=f"{metric.capitalize()} — {dataset}", xlabel="epoch", ylabel=metric)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=8, frameon=False)
    return fig


def plot_curves_small_multiples(histories, dataset, metric, columns=PANEL_COLUMNS):
    """One panel per compared model, on shared axes: its validation `metric` (solid, with the min-max
    band over seeds) and training `metric` (dotted), over every other model's validation curve in
    grey, so each model reads against the field without a legend."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from .style import STYLE

    data = histories[histories["dataset"] == dataset]
    curves = {model: tuple(_seed_curves(runs)) + (runs["seed"].nunique(),)
              for model, runs in data.groupby("model", sort=False, observed=True)}
    with plt.rc_context(STYLE):
        fig, axes = panel_grid(len(curves), 2.9, 2.2, columns, sharex=True, sharey=True)
        for ax, (model, (mean, low, high, seeds)) in zip(axes.flat, curves.items()):
            for other, (other_mean, *_) in curves.items():
                if other != model:
                    ax.plot(other_mean.index, other_mean[f"val_{metric}"], color="0.8", linewidth=0.8)
            ax.plot(mean.index, mean[f"val_{metric}"], color="tab:blue", linewidth=1.8)
            if seeds > 1:
                ax.fill_between(mean.index, low[f"val_{metric}"], high[f"val_{metric}"], color="tab:blue", alpha=0.2,
                                linewidth=0)
            ax.plot(mean.index, mean[metric], color="tab:blue", linestyle=":", alpha=0.8)
            ax.set_title(model, fontsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in axes[-1]:
            ax.set_xlabel("epoch")
        for ax in axes[:, 0]:
            ax.set_ylabel(metric)
        suptitle(fig, f"{metric.capitalize()} per epoch — {dataset}: validation (solid, band: seeds' range), "
                     "training (dotted), the other models' validation (grey)", fontsize=10)
    return fig


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


# ---------------------------------------------------------------- the same test images, every model


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

    from .style import STYLE, displayable

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
        fig, (top, table) = plt.subplots(2, 1, figsize=(1.1 * len(chosen) + 2.6, 1.5 + 0.26 * len(picks) + 0.6),
                                         height_ratios=[1.5, 0.26 * len(picks)], layout="constrained")
        top.set_axis_off()
        for column, index in enumerate(chosen):
            inset = top.inset_axes([column / len(chosen), 0, 1 / len(chosen), 1])
            inset.imshow(displayable(images[index]), cmap="gray" if images.shape[-1] == 1 else None)
            inset.set_title(f"#{index}\ntrue {shortened(class_names[labels[index]])}", fontsize=8)
            inset.set_axis_off()
        table.imshow(right, cmap=ListedColormap(["#f4c7c3", "#c9e8c9"]), vmin=0, vmax=1, aspect="auto")
        for (row, column), name in np.ndenumerate(predicted):
            table.text(column, row, f"{shortened(class_names[name])} {confidence[row, column]:.0%}", ha="center", va="center", fontsize=7)
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

    from .style import STYLE, displayable

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


def representative_anatomies(summary):
    """(experiment, its anatomy.json) of each dataset's compared models' representative seeds; models
    evaluated before anatomy.json existed are left out."""
    for experiment, _ in representatives(summary):
        path = Path(experiment.experiment_dir) / "anatomy.json"
        if path.exists():
            yield experiment, read_json(path)


def anatomy_blocks(anatomies):
    """Per dataset and compared model (its representative seed): the layer table with output sizes,
    parameters and receptive fields, the output-size arithmetic of the first layers, and how far the
    first convolution by hand lies from the layer (anatomy.json, written by the evaluate job);
    `anatomies`: representative_anatomies' pairs."""
    blocks = []
    for experiment, anatomy in anatomies:
        layers = pd.DataFrame(anatomy["layers"])
        spatial = layers.dropna(subset=["receptive_field"])
        field = int(spatial["receptive_field"].iloc[-1]) if len(spatial) else None
        by_hand = anatomy["first_conv"]
        table = layers[["layer", "type", "output", "parameters", "receptive_field", "jump"]].rename(
            columns={"receptive_field": "receptive field (px)", "jump": "jump (px)"})
        arithmetic = "".join(f"<li><code>{html.escape(line)}</code></li>" for line in anatomy["size_arithmetic"])
        blocks.append(
            f"<details><summary><b>{experiment.model}</b> on {experiment.dataset}: {len(layers)} layers, "
            f"{int(layers['parameters'].sum()):,} parameters"
            + (f", receptive field {field} px (input {anatomy['input']})" if field else "")
            + f"; first convolution by hand: |Δ| ≤ {by_hand['max_abs_difference']:.1e} ({by_hand['precision']})</summary>"
            f"<p>Output size of the first window layers:</p><ul>{arithmetic}</ul>"
            + table.to_html(index=False, na_rep="–", float_format=lambda value: f"{value:,.0f}", classes="anatomy")
            + "</details>")
    return "\n".join(blocks)


WEIGHTED_LAYERS = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"}


def architectures_table(anatomies, board):
    """The famous-architectures table: per architecture trained in the study, what it is, its key
    idea, its depth (weighted layers) and parameters from its anatomy, next to what this study
    measured (mean test accuracy and latency per dataset from the leaderboard); `anatomies`:
    representative_anatomies' pairs."""
    rows = []
    for experiment, anatomy in anatomies:
        layers = pd.DataFrame(anatomy["layers"])
        measured = board[(board["dataset"] == experiment.dataset) & (board["architecture"] == experiment.architecture)
                         & (board["variant"].astype(str) == str(experiment.variant))].iloc[0]
        rows.append({"architecture": experiment.model, "dataset": experiment.dataset,
                     "what it is": anatomy.get("about", {}).get("description", ""),
                     "key idea": anatomy.get("about", {}).get("idea", ""),
                     "depth (weighted layers)": int(layers["type"].isin(WEIGHTED_LAYERS).sum()),
                     "parameters": int(layers["parameters"].sum()),
                     "test accuracy (mean)": measured["accuracy_mean"], "latency (ms, batch 1)": measured["latency_ms"]})
    table = pd.DataFrame(rows)
    if table.empty:
        return ""
    return (table.style.format({"parameters": "{:,}", "test accuracy (mean)": "{:.2%}", "latency (ms, batch 1)": "{:.2f}"},
                               na_rep="–").hide(axis="index")
            .set_properties(subset=["what it is", "key idea"], **{"text-align": "left"}).to_html())


def figure_tag(fig, alt):
    """A matplotlib figure as an inline PNG <img> with a description (plt.show() leaves the
    image without one, which nbconvert fills with "No description has been provided")."""
    import matplotlib.pyplot as plt

    from .style import png_bytes

    data = base64.b64encode(png_bytes(fig)).decode()
    plt.close(fig)
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="max-width:100%">'


def image_tag(path, alt=None):
    """An <img> with the PNG inlined (so the HTML needs no other file), shown at the size it was drawn."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt or Path(path).name)}">'


# ---------------------------------------------------------------- build


def build_report(template, notebook, html, parameters, show_code=False):
    """Execute the template notebook with papermill, then render it to self-contained HTML."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    # The notebook's kernel imports convbench from this workflow even where it is not installed.
    package_root = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with atomic_path(notebook) as executed:
        papermill.execute_notebook(
            str(template), str(executed), parameters=parameters, kernel_name="python3", progress_bar=False,
            log_output=True,
        )
        exporter = HTMLExporter(
            extra_template_basedirs=[str(TEMPLATES)], template_name="convbench", exclude_input=not show_code,
            exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True,
        )
        body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
        with atomic_path(html) as tmp:
            tmp.write_text(body, encoding="utf-8")
    log.info("report written to %s", html)


# ---------------------------------------------------------------- how sure, and at what cost


def accuracy_interval(accuracy, confidence=0.95):
    """t interval of the mean accuracy over seeds, clipped to [0, 1] (the t interval knows no
    bounds: 0.99 +- 0.02 would claim 101 %); identical seeds give the point itself."""
    from scipy import stats  # here, not at the top: scipy.stats alone takes 0.4 s to import

    mean, sem = float(np.mean(accuracy)), float(stats.sem(accuracy))
    if sem == 0:
        return mean, mean
    low, high = stats.t.interval(confidence, len(accuracy) - 1, loc=mean, scale=sem)
    return max(0.0, low), min(1.0, high)


def seed_statistics(summary, dataset, confidence=0.95, by="architecture"):
    """Per compared model (column `by`): mean test accuracy with a t-based confidence interval over
    seeds, and a paired t-test (paired by seed) of the leader against every other one.

    Returns None with fewer than three seeds: two points give no usable spread.
    """
    from scipy import stats

    data = summary[summary["dataset"] == dataset]
    if data.groupby(by, observed=True)["seed"].nunique().min() < 3:
        return None
    rows = []
    for name, runs in data.groupby(by, observed=True, sort=False):
        accuracy = runs["accuracy"].to_numpy()
        low, high = accuracy_interval(accuracy, confidence)
        rows.append({by: name, "seeds": len(accuracy), "accuracy_mean": accuracy.mean(), "ci_low": low, "ci_high": high})
    table = pd.DataFrame(rows).sort_values("accuracy_mean", ascending=False, ignore_index=True)
    leader = table[by].iloc[0]
    by_seed = data.pivot_table(index="seed", columns=by, values="accuracy", observed=True)
    p_values = []
    for name in table[by]:
        pair = by_seed[[leader, name]].dropna()
        p_values.append(None if name == leader else float(stats.ttest_rel(pair[leader], pair[name]).pvalue))
    table[f"p_vs_{leader}"] = p_values
    return table


# ---------------------------------------------------------------- variants


def variant_effects(summary, dataset, confidence=0.95):
    """For each architecture trained under two or more variants: every variant's effect on test
    accuracy against the first one (the baseline), from seed-paired differences.

    One row per (architecture, variant): the mean paired difference, its t interval (two or more
    shared seeds) and the paired t-test's p-value (three or more). None when no architecture has
    two variants.
    """
    from scipy import stats

    data = summary[summary["dataset"] == dataset]
    rows = []
    for architecture, runs in data.groupby("architecture", sort=False):
        by_seed = runs.pivot_table(index="seed", columns="variant", values="accuracy", observed=True)
        variants = [variant for variant in runs["variant"].cat.categories if variant in by_seed]
        if len(variants) < 2:
            continue
        baseline = variants[0]
        for variant in variants[1:]:
            pair = by_seed[[baseline, variant]].dropna()
            difference = (pair[variant] - pair[baseline]).to_numpy()
            low = high = p_value = None
            if len(difference) >= 2:
                sem = stats.sem(difference)
                low, high = (difference.mean(),) * 2 if sem == 0 else stats.t.interval(
                    confidence, len(difference) - 1, loc=difference.mean(), scale=sem)
            if len(difference) >= 3 and stats.sem(difference) > 0:
                p_value = float(stats.ttest_rel(pair[variant], pair[baseline]).pvalue)
            rows.append({
                "architecture": architecture, "variant": variant, "baseline": baseline,
                "changes": runs.loc[runs["variant"] == variant, "variant_changes"].iloc[0],
                "paired_seeds": len(difference), "baseline_accuracy": pair[baseline].mean(),
                "variant_accuracy": pair[variant].mean(), "difference": difference.mean(),
                "ci_low": low, "ci_high": high, "p_value": p_value,
            })
    return pd.DataFrame(rows) if rows else None


def style_variant_effects(effects):
    """The effects table as a reader wants it: accuracies, the signed difference and its interval
    (what each variant changes is listed once, in the table above it)."""
    def interval(row):
        return "–" if pd.isna(row["ci_low"]) else f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"

    table = pd.DataFrame({
        "architecture": effects["architecture"], "variant": effects["variant"], "paired seeds": effects["paired_seeds"],
        "accuracy, baseline": effects["baseline_accuracy"], "accuracy, variant": effects["variant_accuracy"],
        "difference": effects["difference"], "95 % interval": effects.apply(interval, axis=1),
        "p-value": effects["p_value"],
    })
    return table.style.format({"accuracy, baseline": "{:.4f}", "accuracy, variant": "{:.4f}", "difference": "{:+.4f}",
                               "p-value": "{:.3g}"}, na_rep="–").hide(axis="index")


def plot_variant_accuracy(summary, dataset):
    """Test accuracy per variant, one panel per architecture: every seed as a point, the mean as a bar."""
    import matplotlib.pyplot as plt

    from .style import STYLE

    data = summary[summary["dataset"] == dataset]
    architectures = list(dict.fromkeys(data["architecture"]))
    variants = [variant for variant in data["variant"].cat.categories if variant in set(data["variant"])]
    rng = np.random.default_rng(0)  # jitter only, so that equal seeds do not hide each other
    panel = max(3.2, 0.5 * len(variants) + 1.6)  # inches: room for every variant's tick label
    with plt.rc_context(STYLE):
        fig, axes = panel_grid(len(architectures), panel, 3.6, min(PANEL_COLUMNS, int(16 // panel)),  # rows ≤ ~16 in
                               sharey=True)
        for ax, architecture in zip(axes.flat, architectures):
            runs = data[data["architecture"] == architecture]
            for position, variant in enumerate(variants):
                accuracy = runs.loc[runs["variant"] == variant, "accuracy"].to_numpy()
                if not len(accuracy):
                    continue
                ax.bar(position, accuracy.mean(), color="tab:blue" if position else "tab:gray", alpha=0.35, width=0.6)
                ax.scatter(position + rng.uniform(-0.12, 0.12, len(accuracy)), accuracy, color="black", s=14, zorder=3)
            ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
            ax.set(title=architecture, ylabel="test accuracy")
            ax.set_ylim(max(0.0, data["accuracy"].min() - 0.05), min(1.0, data["accuracy"].max() + 0.02))
        suptitle(fig, f"Test accuracy per variant — {dataset} (bars: mean, points: seeds, grey: baseline)")
    return fig


def plot_sweep(summary, dataset, keys, variants):
    """Test accuracy of the sweep's `variants` against one swept setting (a line per architecture,
    seeds as points), or a heat map of the mean over two settings (one panel per architecture)."""
    import matplotlib.pyplot as plt

    from .style import STYLE

    columns = [SETTING_PREFIX + key for key in keys]
    data = summary[(summary["dataset"] == dataset) & summary["variant"].isin(variants)]
    architectures = list(dict.fromkeys(data["architecture"]))
    with plt.rc_context(STYLE):
        if len(keys) == 1:
            fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
            for architecture in architectures:
                runs = data[data["architecture"] == architecture]
                mean = runs.groupby(columns[0])["accuracy"].mean()
                (line,) = ax.plot(mean.index, mean.to_numpy(), marker="o", label=architecture)
                ax.scatter(runs[columns[0]], runs["accuracy"], color=line.get_color(), s=10, alpha=0.5)
            values = data[columns[0]].to_numpy(float)
            if values.min() > 0 and values.max() / values.min() >= 10:
                ax.set_xscale("log")
            ax.set(xlabel=keys[0], ylabel="test accuracy", title=f"Sweep over {keys[0]} — {dataset}")
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)  # beside, never over, the lines
            return fig
        fig, axes = panel_grid(len(architectures), 4.4, 3.8)
        for ax, architecture in zip(axes.flat, architectures):
            grid = data[data["architecture"] == architecture].pivot_table(
                index=columns[0], columns=columns[1], values="accuracy", aggfunc="mean")
            image = ax.imshow(grid.to_numpy(), cmap="viridis", aspect="auto", origin="lower")
            ax.set_xticks(range(grid.shape[1]), [f"{value:g}" for value in grid.columns])
            ax.set_yticks(range(grid.shape[0]), [f"{value:g}" for value in grid.index])
            for (row, column), value in np.ndenumerate(grid.to_numpy()):
                ax.text(column, row, f"{value:.3f}", ha="center", va="center", color="white", fontsize=8)
            ax.grid(False)
            ax.set(xlabel=keys[1], ylabel=keys[0], title=architecture)
            fig.colorbar(image, ax=ax, label="mean test accuracy")
        suptitle(fig, f"Sweep over {keys[0]} × {keys[1]} — {dataset}")
    return fig


def plottable_sweep(sweep):
    """The swept settings when a plot can put them on axes: one or two, every value a number."""
    numeric = all(isinstance(value, (int, float)) and not isinstance(value, bool)
                  for values in sweep.values() for value in values)
    return list(sweep) if numeric and 1 <= len(sweep) <= 2 else []


def pareto_front(cost, accuracy):
    """Indices of the points no other point beats on both (lower cost and higher accuracy), by cost."""
    order = np.lexsort((-np.asarray(accuracy), np.asarray(cost)))
    front, best = [], -np.inf
    for index in order:
        if accuracy[index] > best:
            front.append(int(index))
            best = accuracy[index]
    return front


LABEL_OFFSETS = [(4, 4), (4, -11), (-4, 4), (-4, -11), (0, 9), (0, -15), (9, -3), (-9, -3)]  # points


def place_labels(ax, xs, ys, texts, fontsize=8):
    """Label each point beside it where the label overlaps no label placed before and no point and
    stays inside the axes: the first free spot of a few offsets around it (left of the point, the
    label ends there); else the least crowded one. A greedy pass, enough for a few dozen points."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    points = ax.transData.transform(np.column_stack([xs, ys]))
    taken = []
    for x, y, text in zip(xs, ys, texts):
        best = None
        for dx, dy in LABEL_OFFSETS:
            label = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                                ha="left" if dx >= 0 else "right")
            box = label.get_window_extent(renderer).padded(1)
            crowding = sum(box.overlaps(other) for other in taken) + int(np.sum(
                (points[:, 0] >= box.x0) & (points[:, 0] <= box.x1) & (points[:, 1] >= box.y0) & (points[:, 1] <= box.y1)))
            crowding += 2 * (box.x0 < ax.bbox.x0 or box.x1 > ax.bbox.x1 or box.y0 < ax.bbox.y0 or box.y1 > ax.bbox.y1)
            if best is None or crowding < best[0]:
                if best is not None:
                    best[1].remove()
                best = (crowding, label, box)
            else:
                label.remove()
            if crowding == 0:
                break
        taken.append(best[2])


def plot_cost_vs_accuracy(board, dataset):
    """Mean accuracy against parameters, latency and training time, with the Pareto front marked.
    Few models are labelled by name; more than OVERLAY_LIMIT by number, with the key beside the plots."""
    import matplotlib.pyplot as plt

    from .style import STYLE

    data = board[board["dataset"] == dataset].reset_index(drop=True)
    names = data["architecture"].astype(str)
    if data["variant"].nunique() > 1:
        names = names + " · " + data["variant"].astype(str)
    numbered = len(data) > OVERLAY_LIMIT
    labels = [str(number) for number in range(1, len(data) + 1)] if numbered else list(names)
    costs = [("parameters", "parameters"), ("latency_ms", "latency at batch 1 (ms)"),
             ("train_seconds", "training time (s)")]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3 + numbered, figsize=(13 + 2.8 * numbered, 4.2), layout="constrained",
                                 width_ratios=[1, 1, 1] + [0.7] * numbered)
        for ax, (column, label) in zip(axes, costs):
            cost, accuracy = data[column].to_numpy(float), data["accuracy_mean"].to_numpy(float)
            ax.errorbar(cost, accuracy, yerr=data["accuracy_std"].fillna(0), fmt="o", capsize=3, markersize=4)
            front = pareto_front(cost, accuracy)
            ax.step(cost[front], accuracy[front], where="post", color="tab:red", alpha=0.6)
            ax.set(xscale="log", xlabel=label, ylabel="test accuracy", title=f"Accuracy vs {label.split(' (')[0]}")
        fig.canvas.draw()  # fixes the axes' limits and transforms before labels are placed
        for ax, (column, _) in zip(axes, costs):
            place_labels(ax, data[column].to_numpy(float), data["accuracy_mean"].to_numpy(float), labels)
        if numbered:
            axes[3].set_axis_off()
            key = "\n".join(f"{number:>2}  {name}" for number, name in zip(labels, names))
            axes[3].text(0, 0.5, key, fontsize=8, family="monospace", va="center", ha="left")
        suptitle(fig, f"Cost vs accuracy — {dataset} (red: the Pareto front; bars: ± std over seeds)")
    return fig


# ---------------------------------------------------------------- study overview and provenance


def plot_samples(manifest_path, per_class=6):
    """The first training images of every class, one row per class."""
    import matplotlib.pyplot as plt

    from .style import STYLE, displayable

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


def benchmark_table(files, root="results/benchmarks"):
    """Wall time and peak memory of the study's jobs, from Snakemake's benchmark `files` (those that
    exist: a job that never ran has none), named by their path under `root`."""
    rows = []
    for path in map(Path, files):
        if not path.exists():
            continue
        record = pd.read_csv(path, sep="\t").iloc[-1]
        job = path.relative_to(root).with_suffix("")
        rows.append({"stage": job.parts[0], "job": "/".join(job.parts[1:]) or job.parts[0],
                     "wall_seconds": record["s"], "max_rss_mb": record.get("max_rss")})
    return pd.DataFrame(rows)


def provenance(workflow_dir="."):
    """Where these numbers come from: code version, packages, machine, date."""
    import datetime
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from .vcs import git_commit

    commit = git_commit(workflow_dir)
    packages = {}
    for name in ("convbench", "tensorflow", "keras", "numpy", "scikit-learn", "pandas", "matplotlib", "snakemake",
                 "papermill", "nbconvert"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "git commit": commit or "not a git checkout",
        "report built": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        **packages,
    }
