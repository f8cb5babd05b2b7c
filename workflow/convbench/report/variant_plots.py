"""Variant and sweep plots: accuracy per variant, and a sweep's settings on axes."""

import numpy as np

from ..base.style import suptitle
from .page import PANEL_COLUMNS, panel_grid
from .summary import SETTING_PREFIX


def plot_variant_accuracy(summary, dataset):
    """Test accuracy per variant, one panel per architecture: every seed as a point, the mean as a bar."""
    import matplotlib.pyplot as plt

    from ..base.style import STYLE

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

    from ..base.style import STYLE

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
