"""The report stage: helpers the report notebook calls, and executing/rendering it."""

import base64
import logging
import os
from pathlib import Path

import pandas as pd

from .atomic import atomic_path, read_json

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent.parent / "notebooks" / "templates"


# ---------------------------------------------------------------- tables


def leaderboard(summary):
    """Per dataset and architecture: mean and std over seeds, sorted by mean test accuracy."""
    grouped = summary.groupby(["dataset", "architecture"])
    board = grouped.agg(
        seeds=("seed", "count"),
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        loss_mean=("loss", "mean"),
        loss_std=("loss", "std"),
        macro_f1=("macro_f1", "mean"),
        parameters=("parameters", "first"),
        train_seconds=("train_seconds", "mean"),
        images_per_second=("images_per_second", "mean"),
    ).reset_index()
    return board.sort_values(["dataset", "accuracy_mean"], ascending=[True, False], ignore_index=True)


def style_leaderboard(board):
    """Formatted table with the best value of each column highlighted."""
    higher_better = ["accuracy_mean", "macro_f1", "images_per_second"]
    lower_better = ["loss_mean", "parameters", "train_seconds"]
    styler = board.style.format(
        {
            "accuracy_mean": "{:.4f}", "accuracy_std": "{:.4f}", "loss_mean": "{:.4f}", "loss_std": "{:.4f}",
            "macro_f1": "{:.4f}", "parameters": "{:,.0f}", "train_seconds": "{:.1f}", "images_per_second": "{:,.0f}",
        },
        na_rep="–",
    )
    for dataset in board["dataset"].unique():
        rows = board.index[board["dataset"] == dataset]
        styler = styler.highlight_max(subset=(rows, higher_better), props="font-weight:bold;background-color:#d4edda")
        styler = styler.highlight_min(subset=(rows, lower_better), props="font-weight:bold;background-color:#d4edda")
    return styler.hide(axis="index")


# ---------------------------------------------------------------- figures


def load_histories(paths):
    """Training histories of all experiments in one long frame, keyed by experiment."""
    frames = []
    for path in paths:
        frame = pd.read_csv(path)
        seed_dir = Path(path).parent
        frame["seed"] = int(seed_dir.name.removeprefix("seed"))
        frame["architecture"] = seed_dir.parent.name
        frame["dataset"] = seed_dir.parent.parent.name
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def plot_curves_overlay(histories, dataset):
    """Validation accuracy and loss of every architecture on one dataset (mean over seeds)."""
    import matplotlib.pyplot as plt

    from .visualization import STYLE

    data = histories[histories["dataset"] == dataset]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
        for architecture, runs in data.groupby("architecture"):
            mean = runs.groupby("epoch").mean(numeric_only=True)
            for ax, metric in zip(axes, ("accuracy", "loss")):
                (line,) = ax.plot(mean.index, mean[f"val_{metric}"], label=f"{architecture} (validation)")
                ax.plot(mean.index, mean[metric], color=line.get_color(), linestyle=":", alpha=0.7,
                        label=f"{architecture} (train)")
        for ax, metric in zip(axes, ("accuracy", "loss")):
            ax.set(title=f"{metric.capitalize()} — {dataset}", xlabel="epoch", ylabel=metric)
            ax.legend(fontsize=8)
    return fig


def figure_paths(manifest_paths, kind):
    """(experiment label, PNG path) of one kind of figure for every experiment."""
    entries = []
    for path in manifest_paths:
        seed_dir = Path(path).parent.parent
        label = f"{seed_dir.parent.name} on {seed_dir.parent.parent.name}, {seed_dir.name}"
        entries.append((label, read_json(path)[kind]["path"]))
    return entries


def image_tag(path, width=None):
    """An <img> with the PNG inlined, so the HTML needs no other file."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    size = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{data}"{size} alt="{Path(path).name}">'


# ---------------------------------------------------------------- build


def build_report(template, notebook, html, parameters, show_code=False):
    """Execute the template notebook with papermill, then render it to self-contained HTML."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    # The notebook's kernel imports convbench from this workflow even where it is not installed.
    package_root = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
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
