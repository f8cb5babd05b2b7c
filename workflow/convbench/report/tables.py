"""The report's tables: summary.csv read as the compared models, the leaderboard (mean ± std over
seeds) and its styling, every experiment, the exports."""

import html
from pathlib import Path

import pandas as pd

from ..base.atomic import read_json
from ..evaluate.metrics import METRICS, leaderboard_columns
from .summary import read_summary


def load_summary(path):
    """summary.csv with a `model` column naming what is compared: the architecture, and its
    variant when the study has several (`bn_cnn · augmented`). Variants keep the study's order."""
    summary = read_summary(path)
    summary["variant_changes"] = summary["variant_changes"].fillna("")
    summary["variant"] = pd.Categorical(summary["variant"], categories=list(dict.fromkeys(summary["variant"])))
    several = summary["variant"].nunique() > 1
    summary["model"] = summary["architecture"] + (" · " + summary["variant"].astype(str) if several else "")
    return summary


def on_shared_seeds(summary):
    """Per dataset, only the seeds every compared model ran, where their seed sets differ (a search's tuned
    recipes run on the confirmation seeds only): means over different seeds are not comparable."""
    if "variant" not in summary:
        summary = summary.assign(variant="default")
    parts = []
    for _, data in summary.groupby("dataset", sort=False):
        seed_sets = [frozenset(runs["seed"]) for _, runs in data.groupby(["architecture", "variant"], observed=True)]
        common = frozenset.intersection(*seed_sets)
        parts.append(data[data["seed"].isin(common)] if common else data)
    return pd.concat(parts)


def shared_seed_note(summary):
    """What on_shared_seeds left out, per dataset, in one line each (empty when nothing)."""
    kept = on_shared_seeds(summary)
    lines = []
    for dataset, data in summary.groupby("dataset", sort=False):
        seeds = sorted(kept.loc[kept["dataset"] == dataset, "seed"].unique())
        dropped = data[~data.index.isin(kept.index)]
        if len(dropped):
            extra = ", ".join(f"{model} seed {seed}" for model, seed in zip(dropped["model"], dropped["seed"]))
            lines.append(f"On **{dataset}** every model is ranked on seeds {', '.join(map(str, seeds))}, the ones all "
                         f"of them ran; left out here (in All experiments below): {extra}.")
    return "\n\n".join(lines)


def leader_facts(summary, dataset, model):
    """`225,034 parameters, 0.25 ms per image` of a compared model (latency only where it was measured)."""
    runs = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
    facts = [f"{runs['parameters'].iloc[0]:,.0f} parameters"]
    latency = runs["latency_ms"].median() if "latency_ms" in runs else float("nan")
    facts.append(f"{latency:.2f} ms per image" if pd.notna(latency) else "latency not measured")
    return ", ".join(facts)


def leaderboard(summary, metrics_table=METRICS):
    """Per dataset, architecture and variant: the metrics table's aggregations over seeds (mean
    and std of accuracy and loss, ...), on the seeds all of the dataset's models ran, sorted by mean
    test accuracy."""
    summary = on_shared_seeds(summary)
    grouped = summary.groupby(["dataset", "architecture", "variant"], observed=True)
    inputs = {"input": ("input_shape", "first")} if "input_shape" in summary else {}  # architectures run at different sizes
    board = grouped.agg(
        seeds=("seed", "count"),
        **inputs,
        **{column: (metric.name, how) for column, metric, how in leaderboard_columns(metrics_table)},
    ).reset_index()
    board["variant"] = board["variant"].astype(str)
    return board.sort_values(["dataset", "accuracy_mean"], ascending=[True, False], ignore_index=True)


BEST = "font-weight:bold;background-color:#d4edda"  # the leaderboard's mark of the best value

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


def style_leaderboard(board, metrics_table=METRICS, full=True, first=None):
    """Formatted by the metrics table, human headers, the best value of each ranked column
    highlighted per dataset (test accuracy: every model `first` names for its dataset, {dataset: {(architecture,
    variant)}}, the leader and those tied with it, else the top value); the variant column only when the
    study compares variants. Not `full`:
    the first-screen version, without the metrics the table keeps off it (so that it fits 1280 px)."""
    marked = [row for row in board.index if first and (board.at[row, "architecture"], str(board.at[row, "variant"]))
              in first.get(board.at[row, "dataset"], ())]  # before the variant column may go
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
            if column == "accuracy_mean" and first and dataset in first:  # no single best where models are tied
                styler = styler.map(lambda _: BEST, subset=([row for row in rows if row in marked], [column]))
                continue
            best = styler.highlight_max if metric.higher_is_better else styler.highlight_min
            styler = best(subset=(rows, [column]), props=BEST)
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
