"""The report's Search section: each architecture's search (scores against trial number with the best so far,
the rungs, each searched setting against its score), its chosen recipe, and the confirmation of the chosen
recipes on fresh seeds: tuned against default per architecture, and both rankings."""

import numpy as np
import pandas as pd

from ..base.atomic import read_json
from ..base.style import suptitle
from ..tune.space import parse_space
from .confidence import points
from .page import panel_grid

RUNG_COLORS = ["tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]


def load_records(paths):
    return [read_json(path) for path in paths]


def trials_frame(record):
    """One row per trained trial: trial, rung, epochs, score, and one column per searched setting."""
    rows = [{"trial": trial["trial"], "rung": trial["rung"], "epochs": trial["epochs"], "score": trial["score"],
             "variant": trial["variant"], **trial["settings"]} for trial in record["trials"]]
    return pd.DataFrame(rows)


def plot_search(record):
    """Validation accuracy against trial number (rung 0, best so far as a step line, later rungs as larger
    marks), the rungs (each promoted trial's line), and every searched setting against its score."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from ..base.style import STYLE

    plan = record["plan"]
    dimensions = parse_space(plan["space"])
    trials = trials_frame(record)
    first = trials[trials["rung"] == 0].sort_values("trial")
    with plt.rc_context(STYLE):
        fig, axes = panel_grid(2 + len(dimensions), 3.6, 3.2)
        axes = axes.flat
        ax = axes[0]
        for rung in sorted(trials["rung"].unique()):
            part = trials[trials["rung"] == rung]
            ax.scatter(part["trial"], part["score"], s=10 + 14 * rung, color=RUNG_COLORS[rung % len(RUNG_COLORS)],
                       label=f"rung {rung}: {part['epochs'].iloc[0]} epochs", zorder=3, alpha=0.8)
        ax.step(first["trial"], first["score"].fillna(-np.inf).cummax(), where="post", color="black", linewidth=1,
                label="best so far (rung 0)")
        ax.set(xlabel="trial", ylabel="validation accuracy", title="trials in proposal order")
        ax.legend(fontsize=7, loc="lower right")
        ax = axes[1]
        for number, runs in trials.groupby("trial"):
            if len(runs) > 1:
                ax.plot(runs["epochs"], runs["score"], marker="o", markersize=3, linewidth=0.8)
        ax.scatter(first["epochs"], first["score"], s=8, color="tab:gray", zorder=3)
        ax.set(xlabel="epochs (rung budget)", ylabel="validation accuracy",
               title="rungs: which trials went on" if len(plan["rungs"]) > 1 else "one rung (no halving)")
        for ax, dimension in zip(axes[2:], dimensions):
            values = first[dimension.key]
            if dimension.kind == "choice":
                labels = [str(value) for value in dimension.values]
                ax.scatter([labels.index(str(value)) for value in values], first["score"], s=10, color="tab:blue")
                ax.set_xticks(range(len(labels)), labels)
                ax.set_xlim(-0.5, len(labels) - 0.5)
            else:
                ax.scatter(values, first["score"], s=10, color="tab:blue")
                if dimension.log_axis:
                    ax.set_xscale("log")
                    ax.xaxis.set_minor_formatter(NullFormatter())  # 3x10^-4 labels between the decades overlap
            chosen = record["chosen"]["settings"][dimension.key]
            position = [str(v) for v in dimension.values].index(str(chosen)) if dimension.kind == "choice" else chosen
            ax.axvline(position, color="tab:red", linewidth=1, linestyle="--")
            ax.set(xlabel=dimension.key, ylabel="validation accuracy (rung 0)")
        suptitle(fig, f"Search of {record['architecture']} on {record['dataset']}: {plan['method']}, {plan['trials']} trials "
                      f"(red dashes: the chosen value)")
    return fig


def chosen_recipe(record, default_settings):
    """The chosen trial's searched settings beside the default recipe's."""
    chosen = record["chosen"]
    return pd.DataFrame({
        "setting": list(chosen["settings"]),
        "default recipe": [default_settings.get(key) for key in chosen["settings"]],
        f"chosen (trial {chosen['trial']})": list(chosen["settings"].values()),
    })


def confirmation(summary, records, dataset, confidence=0.95):
    """Per architecture: default and tuned recipe on the confirmation seeds (mean test accuracy), the paired
    difference with its t interval, and each architecture's rank untuned and tuned."""
    from scipy import stats

    data = summary[summary["dataset"] == dataset]
    rows = []
    for record in (record for record in records if record["dataset"] == dataset):
        arch, baseline, tuned = record["architecture"], record["baseline"], record["confirmed_as"]
        runs = data[data["architecture"] == arch]
        by_seed = runs.pivot_table(index="seed", columns="variant", values="accuracy", observed=True)
        if tuned not in by_seed or baseline not in by_seed:
            continue
        pair = by_seed[[baseline, tuned]].dropna()
        difference = (pair[tuned] - pair[baseline]).to_numpy()
        sem = stats.sem(difference) if len(difference) > 1 else np.nan
        low, high = ((difference.mean(),) * 2 if sem == 0 else
                     stats.t.interval(confidence, len(difference) - 1, loc=difference.mean(), scale=sem)
                     if len(difference) > 1 else (np.nan, np.nan))
        rows.append({"architecture": arch, "seeds": len(difference), "default": pair[baseline].mean(),
                     "tuned": pair[tuned].mean(), "difference": difference.mean(), "ci_low": low, "ci_high": high,
                     "validation (search)": record["chosen"]["validation_accuracy"]})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["rank untuned"] = table["default"].rank(ascending=False, method="min").astype(int)
    table["rank tuned"] = table["tuned"].rank(ascending=False, method="min").astype(int)
    return table.sort_values("tuned", ascending=False, ignore_index=True)


def style_confirmation(table):
    shown = pd.DataFrame({
        "architecture": table["architecture"], "rank tuned": table["rank tuned"], "rank untuned": table["rank untuned"],
        "test accuracy, tuned": table["tuned"].map("{:.2%}".format),
        "test accuracy, default": table["default"].map("{:.2%}".format),
        "tuned − default": table["difference"].map(points),
        "95 % interval": [f"[{100 * low:+.2f}, {100 * high:+.2f}] points" if not np.isnan(low) else "–"
                          for low, high in zip(table["ci_low"], table["ci_high"])],
        "paired seeds": table["seeds"],
        "validation accuracy in the search": table["validation (search)"].map("{:.2%}".format),
    })
    return shown.style.hide(axis="index")


def order_changed(table):
    """Whether tuning changed the architectures' order (by mean test accuracy on the confirmation seeds)."""
    return list(table.sort_values("default", ascending=False)["architecture"]) != list(table["architecture"])
