"""Training curves: every experiment's history.csv in one frame, drawn as one overlay or as small
multiples with the seeds' band."""

from pathlib import Path

import pandas as pd

from ..base.style import suptitle
from .page import OVERLAY_LIMIT, PANEL_COLUMNS, panel_grid

IDENTITY = ["dataset", "architecture", "variant", "seed", "model"]


def load_histories(summary):
    """Training histories of all experiments in one long frame, keyed by the experiment's
    identity as summary.csv records it (never parsed from folder names)."""
    frames = []
    for experiment in summary[IDENTITY + ["experiment_dir"]].itertuples(index=False):
        frame = pd.read_csv(Path(experiment.experiment_dir) / "history.csv")
        frames.append(frame.assign(**{key: getattr(experiment, key) for key in IDENTITY}))
    return pd.concat(frames, ignore_index=True)


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
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from ..base.style import STYLE

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
        styles = [Line2D([], [], color="grey", label="validation (band: min-max over seeds)"),
                  Line2D([], [], color="grey", linestyle=":", label="training")]
        fig.legend(handles + styles, labels + [style.get_label() for style in styles], loc="outside lower center",
                   ncols=min(4, len(labels) + 2), fontsize=8, frameon=False)
    return fig


def plot_curves_small_multiples(histories, dataset, metric, columns=PANEL_COLUMNS):
    """One panel per compared model, on shared axes: its validation `metric` (solid, with the min-max
    band over seeds) and training `metric` (dotted), over every other model's validation curve in
    grey, so each model reads against the field without a legend."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from ..base.style import STYLE

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
