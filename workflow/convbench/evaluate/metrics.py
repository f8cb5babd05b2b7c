"""The one table of metrics: every number summary.csv holds about an experiment's result or cost,
with how to read it from the experiment's files, how to show it and how to rank it.

summarize writes a column per entry (in this order); the report's leaderboard aggregates the
entries that name an aggregation over seeds, formats and highlights them by this table, and its
table of all experiments shows the entries marked for it. Adding a metric is one entry here (and,
if the evaluation must compute it, one function in convbench.evaluate.evaluation).
"""

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Metric:
    name: str  # column in summary.csv and the leaderboard
    label: str  # header a reader sees, with the unit
    read: Callable  # (metrics.json, train_meta.json, the experiment's row of the dataset's cost table) -> value
    format: str | Callable = "{:.4f}"  # a format string or a function value -> text
    higher_is_better: bool | None = None  # None: not ranked (a fact, not a score)
    aggregate: str | None = None  # over seeds in the leaderboard: "mean_std", "mean", "median", "first"; None: not there
    in_experiments_table: bool = True  # a column of the report's table of all experiments
    highlight: bool = True  # the leaderboard marks the best value (when ranked)
    first_screen: bool = True  # in the leaderboard atop the report; else only in its full version further down


def si(value):
    """Large counts in a narrow column: 950 k, 10.0 M, 4.10 G (the exact value stays in summary.csv)."""
    for factor, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            scaled = value / factor
            return f"{scaled:.3g} {unit}" if scaled < 100 else f"{scaled:.0f} {unit}"
    return f"{value:.0f}"


def _macro(key):
    return lambda metrics, meta, cost: metrics["per_class"]["macro avg"][key]


def _from_metrics(key):
    return lambda metrics, meta, cost: metrics[key]


def _from_meta(key):
    return lambda metrics, meta, cost: meta[key]


def _from_cost(key):
    return lambda metrics, meta, cost: None if cost is None else cost[key]


METRICS = (
    # Accuracies are shown as percentages everywhere in the report (summary.csv keeps fractions).
    Metric("accuracy", "test accuracy", _from_metrics("accuracy"), "{:.2%}", higher_is_better=True,
           aggregate="mean_std"),
    # Plain cross-entropy of the test predictions: no label smoothing, no weight penalty (convbench.evaluate.evaluation).
    Metric("loss", "test cross-entropy", _from_metrics("loss"), higher_is_better=False, aggregate="mean_std"),
    Metric("top5_accuracy", "top-5 accuracy", _from_metrics("top5_accuracy"), "{:.2%}", higher_is_better=True),
    Metric("macro_precision", "macro precision", _macro("precision"), higher_is_better=True, in_experiments_table=False),
    Metric("macro_recall", "macro recall", _macro("recall"), higher_is_better=True, in_experiments_table=False),
    Metric("macro_f1", "macro F1", _macro("f1-score"), higher_is_better=True, aggregate="mean"),
    # Calibration is not highlighted: a model that predicts the class prior is perfectly calibrated.
    Metric("expected_calibration_error", "calibration error (ECE)", _from_metrics("expected_calibration_error"),
           higher_is_better=False, aggregate="mean", highlight=False, first_screen=False),
    # Speed: measured for all models of a dataset in one job, under the same conditions (convbench.evaluate.cost).
    Metric("latency_ms", "latency (ms, batch 1)", _from_cost("latency_ms"), "{:.2f}", False, "median"),
    Metric("throughput_images_per_second", "throughput (images/s, batch 256)",
           _from_cost("throughput_images_per_second"), "{:,.0f}", True),
    Metric("test_images", "test images", _from_metrics("test_images"), "{:,}", in_experiments_table=False),
    Metric("parameters", "parameters", _from_meta("parameters"), "{:,.0f}", False, "first"),
    Metric("flops_per_image", "FLOPs per image", _from_metrics("flops_per_image"), si, False, "first",
           first_screen=False),
    Metric("model_bytes", "model file (bytes)", _from_metrics("model_bytes"), "{:,}", False, in_experiments_table=False),
    Metric("epochs_run", "epochs run", _from_meta("epochs_run"), "{:d}"),
    Metric("best_epoch", "best epoch", _from_meta("best_epoch"), "{:d}"),
    Metric("train_seconds", "training time (s)", _from_meta("train_seconds"), "{:.1f}", False, "mean"),
    Metric("images_per_second", "training speed (images/s)", _from_meta("images_per_second"), "{:,.0f}", True, "mean",
           in_experiments_table=False, first_screen=False),
)

BY_NAME = {metric.name: metric for metric in METRICS}


def read_metrics(metrics, meta, cost, table=METRICS):
    """{name: value} of every metric, in table order, from an experiment's metrics.json, train_meta.json
    and its row of the cost table."""
    return {metric.name: metric.read(metrics, meta, cost) for metric in table}


def leaderboard_columns(table=METRICS):
    """(column, metric, how) of the leaderboard in order: mean_std metrics give a _mean and a _std column."""
    columns = []
    for metric in table:
        if metric.aggregate == "mean_std":
            columns += [(f"{metric.name}_mean", metric, "mean"), (f"{metric.name}_std", metric, "std")]
        elif metric.aggregate:
            columns.append((metric.name, metric, metric.aggregate))
    return columns
