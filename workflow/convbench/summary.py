"""The summarize stage: every experiment's metrics and training metadata in one tidy table."""

from pathlib import Path

import pandas as pd

from .atomic import atomic_path, read_json


def summary_row(metrics_path, meta_path, benchmark_path=None):
    """One tidy row: identity, test metrics and training metadata of one experiment."""
    metrics, meta = read_json(metrics_path), read_json(meta_path)
    row = {
        "dataset": meta["dataset"],
        "architecture": meta["architecture"],
        "seed": meta["seed"],
        "accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
        "top5_accuracy": metrics["top5_accuracy"],
        "macro_precision": metrics["per_class"]["macro avg"]["precision"],
        "macro_recall": metrics["per_class"]["macro avg"]["recall"],
        "macro_f1": metrics["per_class"]["macro avg"]["f1-score"],
        "expected_calibration_error": metrics["expected_calibration_error"],
        "latency_ms": metrics["latency_ms"],
        "throughput_images_per_second": metrics["throughput_images_per_second"],
        "test_images": metrics["test_images"],
        "parameters": meta["parameters"],
        "flops_per_image": metrics["flops_per_image"],
        "model_bytes": metrics["model_bytes"],
        "epochs_run": meta["epochs_run"],
        "best_epoch": meta["best_epoch"],
        "train_seconds": meta["train_seconds"],
        "images_per_second": meta["images_per_second"],
        "input_shape": "x".join(map(str, meta["input_shape"])),
        "config_hash": meta["config_hash"],
        "hardware": _hardware(meta["environment"]),
        "tensorflow": meta["environment"]["tensorflow"],
        "keras": meta["environment"]["keras"],
        "experiment_dir": str(Path(metrics_path).parent),
    }
    if benchmark_path:
        row["train_job_wall_seconds"] = float(pd.read_csv(benchmark_path, sep="\t")["s"].iloc[0])
    return row


def _hardware(environment):
    gpus = environment["gpus"]
    return f"{environment['processor']} ({environment['cpu_count']} CPUs)" + (f", {len(gpus)} GPU(s)" if gpus else "")


def write_summary(metrics_paths, meta_paths, benchmark_paths, out_csv):
    rows = [summary_row(*paths) for paths in zip(metrics_paths, meta_paths, benchmark_paths, strict=True)]
    frame = pd.DataFrame(rows).sort_values(["dataset", "architecture", "seed"])
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False)
    return frame
