"""Cost vs accuracy: the Pareto front over parameters, latency and training time, with labels placed
where they overlap nothing."""

import numpy as np

from ..base.style import suptitle
from .page import OVERLAY_LIMIT


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

    from ..base.style import STYLE

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
