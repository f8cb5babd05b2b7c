"""The summarize stage: every experiment's metrics and training metadata in one tidy table."""

from pathlib import Path

import pandas as pd

from ..base.atomic import atomic_path, read_json
from ..base.config import flatten, lookup
from ..base.lock import describe_drift
from ..evaluate.metrics import METRICS, read_metrics

SETTING_PREFIX = "setting."  # summary columns holding the effective value of a setting some variant changes
# Columns that are text however they look: a config hash such as "120534e81197" or a variant named "2"
# would otherwise be read back as a number.
TEXT_COLUMNS = ("dataset", "architecture", "variant", "variant_changes", "input_shape", "config_hash", "precision",
                "precision_reason", "hardware", "cost_measured_on", "tensorflow", "keras", "lock_sha256",
                "lock_drift", "experiment_dir")


def read_summary(path):
    """summary.csv as written: text columns as text (empty cells as missing), numbers as numbers."""
    return pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str), keep_default_na=False, na_values=[""])


def summary_row(metrics_path, meta_path, benchmark_path=None, costs=None, varied_settings=(), metrics_table=METRICS):
    """One tidy row: identity, the metrics of convbench.evaluate.metrics and the provenance of one
    experiment, and the effective value of every setting in `varied_settings` (dotted keys).
    `costs`: the cost tables' rows by (dataset, architecture, variant) (read_costs)."""
    metrics, meta = read_json(metrics_path), read_json(meta_path)
    cost = (costs or {}).get((meta["dataset"], meta["architecture"], meta["variant"]))
    row = {
        "dataset": meta["dataset"],
        "architecture": meta["architecture"],
        "variant": meta["variant"],
        "seed": meta["seed"],
        "variant_changes": ", ".join(f"{key}={value}" for key, value in flatten(meta["variant_overrides"]).items()),
        **read_metrics(metrics, meta, cost, metrics_table),
        "input_shape": "x".join(map(str, meta["input_shape"])),
        "config_hash": meta["config_hash"],
        "threads": meta.get("threads"),
        "precision": meta.get("precision"),
        "precision_reason": meta.get("precision_reason"),
        "batchnorm_fused_layers": meta.get("batchnorm_fused_layers"),
        "hardware": _hardware(meta["environment"]),
        "cost_measured_on": None if cost is None else cost["measured_on"],
        "tensorflow": meta["environment"]["tensorflow"],
        "keras": meta["environment"]["keras"],
        "lock_sha256": meta["environment"].get("lock_sha256"),  # earlier releases recorded no lock
        "lock_drift": describe_drift(meta["environment"].get("lock_drift") or []) or None,
        "experiment_dir": str(Path(metrics_path).parent),
    }
    if benchmark_path:
        row["train_job_wall_seconds"] = float(pd.read_csv(benchmark_path, sep="\t")["s"].iloc[0])
    for key in varied_settings:
        row[SETTING_PREFIX + key] = lookup(meta["settings"], key)
    return row


def _hardware(environment):
    gpus = environment["gpus"]
    return f"{environment['processor']} ({environment['cpu_count']} CPUs)" + (f", {len(gpus)} GPU(s)" if gpus else "")


def read_costs(cost_paths):
    """The cost tables of the study's datasets, by (dataset, architecture, variant)."""
    rows = pd.concat([pd.read_csv(path) for path in cost_paths]) if cost_paths else pd.DataFrame()
    return {(row["dataset"], row["architecture"], row["variant"]): row for row in rows.to_dict("records")}


def write_summary(metrics_paths, meta_paths, benchmark_paths, cost_paths, out_csv, varied_settings=(),
                  metrics_table=METRICS):
    costs = read_costs(cost_paths)
    rows = [summary_row(*paths, costs=costs, varied_settings=varied_settings, metrics_table=metrics_table)
            for paths in zip(metrics_paths, meta_paths, benchmark_paths, strict=True)]
    # Rows come in study order (dataset, architecture, variant, seed); variants keep it: the first is the baseline.
    frame = pd.DataFrame(rows).sort_values(["dataset", "architecture"], kind="stable")
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def best_experiments(summary):
    """Per dataset, the experiment with the highest test accuracy (ties: fewer parameters, then
    the first in the table), as wildcard dicts."""
    ranked = summary.assign(_order=range(len(summary))).sort_values(
        ["dataset", "accuracy", "parameters", "_order"], ascending=[True, False, True, True])
    best = ranked.groupby("dataset", sort=False).head(1)
    return [{"dataset": row.dataset, "arch": row.architecture, "variant": row.variant, "seed": int(row.seed)}
            for row in best.itertuples()]
