"""How long summary + report take for a large study, on generated (fake but valid) result files.

    python benchmarks/report_scale.py [--architectures 5] [--variants 10] [--seeds 10]

Writes every file the summarize and build_report rules read for architectures x variants x seeds
experiments on digits (metrics.json, train_meta.json, history.csv, the six figure PNGs and
figures.json, Snakemake benchmark files), with the variants as a learning-rate sweep; then times
convbench.summary.write_summary and convbench.report.build_report exactly as the rules call them,
and prints the figures with the CPU they ran on.
"""

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "workflow"))

KINDS = ("curves", "confusion", "filters", "feature_maps", "gradcam", "misclassified")


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def figure_templates(out, rng):
    """One PNG per figure kind, drawn by the real plotting code where it needs no model."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from convbench.visualization import plot_confusion_matrix, plot_training_curves, save_figure

    epochs = np.arange(1, 21)
    history = pd.DataFrame({"epoch": epochs, "loss": 1 / epochs, "val_loss": 1.1 / epochs,
                            "accuracy": 1 - 0.5 / epochs, "val_accuracy": 1 - 0.55 / epochs})
    history.to_csv(out / "history.csv", index=False)
    plot_training_curves(history, out / "curves.png", "curves")
    matrix = rng.integers(0, 5, (10, 10)) + np.diag(rng.integers(20, 40, 10))
    plot_confusion_matrix(matrix, [str(i) for i in range(10)], out / "confusion.png", "confusion")
    for kind, tiles in (("filters", 32), ("feature_maps", 96), ("gradcam", 8), ("misclassified", 16)):
        columns = int(np.ceil(np.sqrt(tiles)))
        fig, axes = plt.subplots(columns, columns, figsize=(columns * 0.6, columns * 0.6))
        grid = np.linspace(0, np.pi, 28)
        for ax in axes.flat:  # smooth patterns, as activations and digits are (noise would not compress)
            ax.imshow(np.outer(np.sin(grid * rng.uniform(1, 3)), np.cos(grid * rng.uniform(1, 3))), cmap="viridis")
            ax.axis("off")
        save_figure(fig, out / f"{kind}.png")
    return {kind: out / f"{kind}.png" for kind in KINDS}


def write_experiment(root, dataset, arch, variant, seed, learning_rate, templates, rng):
    experiment = root / f"results/experiments/{dataset}/{arch}/{variant}/seed{seed}"
    (experiment / "figures").mkdir(parents=True)
    accuracy = float(np.clip(0.9 - 40 * abs(learning_rate - 0.002) + rng.normal(0, 0.01), 0, 1))
    per_class = {"macro avg": {"precision": accuracy, "recall": accuracy, "f1-score": accuracy}}
    (experiment / "metrics.json").write_text(json.dumps({
        "accuracy": accuracy, "loss": 1 - accuracy, "top5_accuracy": None, "per_class": per_class,
        "expected_calibration_error": 0.05, "test_images": 360, "flops_per_image": 1e6, "model_bytes": 2_000_000, "confusion_matrix": [[36] * 10] * 10,
    }))
    settings = {"epochs": 20, "learning_rate": learning_rate, "augmentation": {"rotation_range": 0}}
    (experiment / "train_meta.json").write_text(json.dumps({
        "dataset": dataset, "architecture": arch, "variant": variant, "seed": seed,
        "variant_overrides": {} if variant == "default" else {"learning_rate": learning_rate},
        "settings": settings, "config_hash": f"{hash(variant) & 0xffffff:06x}", "parameters": 200_000,
        "epochs_run": 20, "best_epoch": 18, "train_seconds": 30.0, "images_per_second": 1000.0,
        "input_shape": [28, 28, 1],
        "environment": {"gpus": [], "processor": cpu_name(), "cpu_count": 2, "tensorflow": "2.21.0", "keras": "3"},
    }))
    shutil.copy(templates["curves"].parent / "history.csv", experiment / "history.csv")
    figures = {}
    for kind, template in templates.items():
        target = experiment / "figures" / f"{kind}.png"
        target.hardlink_to(template)
        figures[kind] = {"path": str(target.relative_to(root))}
    (experiment / "figures" / "figures.json").write_text(json.dumps(figures))
    for stage in ("train", "evaluate"):
        bench = root / f"results/benchmarks/{stage}/{dataset}/{arch}/{variant}/seed{seed}.tsv"
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\t900\n")
    return experiment


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architectures", type=int, default=5)
    parser.add_argument("--variants", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--keep", help="write the study here and keep it (default: a temporary folder)")
    args = parser.parse_args()

    from convbench.config import sweep_variants
    from convbench.datasets import export_digits, prepare_dataset
    from convbench.report import build_report
    from convbench.summary import write_summary

    root = Path(args.keep or tempfile.mkdtemp(prefix="report-scale-"))
    rng = np.random.default_rng(0)
    templates = figure_templates(Path(tempfile.mkdtemp()), rng)
    rates = [float(f"{rate:.2g}") for rate in np.geomspace(3e-4, 3e-3, args.variants - 1)]
    sweep = {"learning_rate": rates}
    variants = {"default": {}, **sweep_variants(sweep)}
    architectures = [f"arch{index:02d}" for index in range(args.architectures)]

    prepared = root / "results/prepared/digits/28x28x1"
    prepared.parent.mkdir(parents=True)
    export_digits(root / "digits.npz")
    prepare_dataset("digits", [root / "digits.npz"], "28x28x1", f"{prepared}.npz", f"{prepared}.json",
                    split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="unit")
    experiments = [write_experiment(root, "digits", arch, variant, seed, overrides.get("learning_rate", 0.001),
                                    templates, rng)
                   for arch in architectures for variant, overrides in variants.items()
                   for seed in range(1, args.seeds + 1)]
    print(f"{len(experiments)} experiments written under {root}")

    import os

    os.chdir(root)
    cost = [{"dataset": "digits", "architecture": arch, "variant": variant, "latency_ms": 1 + rng.random(),
             "throughput_images_per_second": 5000.0, "measured_on": f"CPU: {cpu_name()}, 2 threads"}
            for arch in architectures for variant in variants]
    Path("results/cost").mkdir(parents=True)
    pd.DataFrame(cost).to_csv("results/cost/digits.csv", index=False)
    start = time.perf_counter()
    write_summary([e / "metrics.json" for e in experiments], [e / "train_meta.json" for e in experiments],
                  [str(e).replace("experiments", "benchmarks/train") + ".tsv" for e in experiments],
                  ["results/cost/digits.csv"], "results/summary.csv", varied_settings=["learning_rate"])
    summary_seconds = time.perf_counter() - start
    config = {"datasets": ["digits"], "architectures": architectures, "seeds": list(range(1, args.seeds + 1)),
              "variants": {"default": {}}, "sweep": sweep}
    start = time.perf_counter()
    build_report(PROJECT / "workflow/notebooks/report.ipynb", "results/report/report.ipynb", "results/report.html",
                 parameters={"summary_csv": "results/summary.csv", "dataset_manifests": [f"{prepared}.json"],
                             "augmentation_previews": [], "config": config, "variants": variants})
    report_seconds = time.perf_counter() - start
    size = Path("results/report.html").stat().st_size
    print(f"\nCPU: {cpu_name()}, {os.cpu_count()} cores")
    print(f"{'experiments':>12} {'summary (s)':>12} {'report (s)':>11} {'total (s)':>10} {'report.html (MB)':>17}")
    print(f"{len(experiments):>12} {summary_seconds:>12.1f} {report_seconds:>11.1f} "
          f"{summary_seconds + report_seconds:>10.1f} {size / 1e6:>17.1f}")
    print("target (issue 11): 500 experiments, summary + report < 60 s")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
