"""The report stage: helpers the report notebook calls, and executing/rendering it."""

import base64
import logging
import os
from pathlib import Path

import numpy as np
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
        expected_calibration_error=("expected_calibration_error", "mean"),
        parameters=("parameters", "first"),
        flops_per_image=("flops_per_image", "first"),
        latency_ms=("latency_ms", "median"),
        train_seconds=("train_seconds", "mean"),
        images_per_second=("images_per_second", "mean"),
    ).reset_index()
    return board.sort_values(["dataset", "accuracy_mean"], ascending=[True, False], ignore_index=True)


def style_leaderboard(board):
    """Formatted table with the best value of each column highlighted."""
    higher_better = ["accuracy_mean", "macro_f1", "images_per_second"]
    lower_better = ["loss_mean", "expected_calibration_error", "parameters", "flops_per_image", "latency_ms",
                    "train_seconds"]
    styler = board.style.format(
        {
            "accuracy_mean": "{:.4f}", "accuracy_std": "{:.4f}", "loss_mean": "{:.4f}", "loss_std": "{:.4f}",
            "macro_f1": "{:.4f}", "expected_calibration_error": "{:.4f}", "parameters": "{:,.0f}",
            "flops_per_image": "{:,.0f}", "latency_ms": "{:.2f}", "train_seconds": "{:.1f}",
            "images_per_second": "{:,.0f}",
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

    from .style import STYLE

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


def seed_statistics(summary, dataset, confidence=0.95):
    """Per architecture: mean test accuracy with a t-based confidence interval over seeds, and a
    paired t-test (paired by seed) of the leader against every other architecture.

    Returns None with fewer than three seeds: two points give no usable spread.
    """
    from scipy import stats

    data = summary[summary["dataset"] == dataset]
    if data.groupby("architecture")["seed"].nunique().min() < 3:
        return None
    rows = []
    for architecture, runs in data.groupby("architecture"):
        accuracy = runs["accuracy"].to_numpy()
        low, high = stats.t.interval(confidence, len(accuracy) - 1, loc=accuracy.mean(), scale=stats.sem(accuracy))
        rows.append({"architecture": architecture, "seeds": len(accuracy), "accuracy_mean": accuracy.mean(),
                     "ci_low": low, "ci_high": high})
    table = pd.DataFrame(rows).sort_values("accuracy_mean", ascending=False, ignore_index=True)
    leader = table["architecture"].iloc[0]
    by_seed = data.pivot_table(index="seed", columns="architecture", values="accuracy")
    p_values = []
    for architecture in table["architecture"]:
        pair = by_seed[[leader, architecture]].dropna()
        p_values.append(None if architecture == leader else float(stats.ttest_rel(pair[leader], pair[architecture]).pvalue))
    table[f"p_vs_{leader}"] = p_values
    return table


def pareto_front(cost, accuracy):
    """Indices of the points no other point beats on both (lower cost and higher accuracy), by cost."""
    order = np.lexsort((-np.asarray(accuracy), np.asarray(cost)))
    front, best = [], -np.inf
    for index in order:
        if accuracy[index] > best:
            front.append(int(index))
            best = accuracy[index]
    return front


def plot_cost_vs_accuracy(board, dataset):
    """Mean accuracy against parameters, latency and training time, with the Pareto front marked."""
    import matplotlib.pyplot as plt

    from .style import STYLE

    data = board[board["dataset"] == dataset].reset_index(drop=True)
    costs = [("parameters", "parameters"), ("latency_ms", "latency at batch 1 (ms)"),
             ("train_seconds", "training time (s)")]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(13, 4), layout="constrained")
        for ax, (column, label) in zip(axes, costs):
            cost, accuracy = data[column].to_numpy(float), data["accuracy_mean"].to_numpy(float)
            ax.errorbar(cost, accuracy, yerr=data["accuracy_std"].fillna(0), fmt="o", capsize=3)
            for x, y, name in zip(cost, accuracy, data["architecture"]):
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
            front = pareto_front(cost, accuracy)
            ax.step(cost[front], accuracy[front], where="post", color="tab:red", alpha=0.6, label="Pareto front")
            ax.set(xscale="log", xlabel=label, ylabel="test accuracy", title=f"Accuracy vs {label.split(' (')[0]}")
            ax.legend(fontsize=8)
        fig.suptitle(f"Cost vs accuracy — {dataset}")
    return fig


# ---------------------------------------------------------------- study overview and provenance


def plot_samples(npz_path, manifest, per_class=6):
    """The first training images of every class, one row per class."""
    import matplotlib.pyplot as plt

    from .style import STYLE, displayable

    with np.load(npz_path) as data:
        images, labels = data["x_train"], data["y_train"]
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
        fig.suptitle(f"{manifest['dataset']}: training samples at {'x'.join(map(str, manifest['input_shape']))}")
    return fig


def benchmark_table(root="results/benchmarks"):
    """Wall time and peak memory of every job, from Snakemake's benchmark files."""
    rows = []
    for path in sorted(Path(root).rglob("*.tsv")):
        record = pd.read_csv(path, sep="\t").iloc[-1]
        job = path.relative_to(root).with_suffix("")
        rows.append({"stage": job.parts[0], "job": "/".join(job.parts[1:]) or job.parts[0],
                     "wall_seconds": record["s"], "max_rss_mb": record.get("max_rss")})
    return pd.DataFrame(rows)


def provenance(workflow_dir="."):
    """Where these numbers come from: code version, packages, machine, date."""
    import datetime
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=workflow_dir, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    packages = {}
    for name in ("convbench", "tensorflow", "keras", "numpy", "scikit-learn", "pandas", "matplotlib", "snakemake",
                 "papermill", "nbconvert"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "git commit": (commit + (" (with uncommitted changes)" if git("status", "--porcelain") else ""))
        if commit else "not a git checkout",
        "report built": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        **packages,
    }
