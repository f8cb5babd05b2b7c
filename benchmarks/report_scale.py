"""How long summary + report take for a large study, and how big the page gets, on generated (fake
but valid) result files.

    python benchmarks/report_scale.py [--architectures 10] [--variants 2] [--seeds 5]

Writes every file the summarize and build_report rules read for architectures x variants x seeds
experiments on digits (metrics.json, test_predictions.npz, train_meta.json, history.csv, anatomy.json,
every figure of convbench.evaluate.figures with figures.json, the cost table, Snakemake benchmark files), with
the variants as a learning-rate sweep; then times convbench.report.summary.write_summary and
convbench.report.build.build_report exactly as the rules call them, and prints the figures with the CPU
they ran on. tests/test_report_scale.py builds the same study and checks the page's structure.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "workflow"))

from convbench.evaluate.figures import NAMES as FIGURE_NAMES  # noqa: E402
from convbench.base.runtime import cpu_model  # noqa: E402


def figure_templates(out, rng):
    """One PNG per figure of convbench.evaluate.figures, drawn by the real plotting code where it needs no model."""
    import matplotlib.pyplot as plt

    from convbench.evaluate.visualization import (mosaic, normalised, plot_confusion_matrix, plot_training_curves, save_figure)

    epochs = np.arange(1, 21)
    history = pd.DataFrame({"epoch": epochs, "loss": 1 / epochs, "val_loss": 1.1 / epochs,
                            "accuracy": 1 - 0.5 / epochs, "val_accuracy": 1 - 0.55 / epochs})
    history.to_csv(out / "history.csv", index=False)
    plot_training_curves(history, out / "curves.png", "curves")
    matrix = rng.integers(0, 5, (10, 10)) + np.diag(rng.integers(20, 40, 10))
    plot_confusion_matrix(matrix, [str(i) for i in range(10)], out / "confusion.png", "confusion")
    grid = np.linspace(0, np.pi, 28)
    for kind in set(FIGURE_NAMES) - {"curves", "confusion"}:
        tiles = [np.outer(np.sin(grid * rng.uniform(1, 3)), np.cos(grid * rng.uniform(1, 3))) for _ in range(48)]
        fig, ax = plt.subplots(figsize=(6, 4.5), layout="constrained")  # smooth patterns, as activations are
        ax.imshow(mosaic(plt.get_cmap("viridis")(normalised(tiles))[..., :3], columns=8))
        ax.set_axis_off()
        ax.set_title(kind)
        save_figure(fig, out / f"{kind}.png")
    return {kind: out / f"{kind}.png" for kind in FIGURE_NAMES}


def anatomy_of(arch):
    """A small, consistent anatomy.json: two conv blocks and a classifier."""
    layers = [("conv1", "Conv2D", "28×28×32", 320, 3, 1, 1, 3, "same"), ("pool1", "MaxPooling2D", "14×14×32", 0, 4, 2, 2, 2, "valid"),
              ("conv2", "Conv2D", "14×14×64", 18_496, 8, 2, 3, 1, "same"), ("pool2", "MaxPooling2D", "7×7×64", 0, 10, 4, 2, 2, "valid"),
              ("flatten", "Flatten", "3136", 0, None, None, None, None, None), ("dense", "Dense", "10", 31_370, None, None, None, None, None)]
    rows = [dict(zip(("layer", "type", "output", "parameters", "receptive_field", "jump", "kernel", "stride", "padding"), layer))
            for layer in layers]
    return {"about": {"description": f"{arch}, a generated architecture", "idea": "stacked 3×3 convolutions"},
            "input": "28×28×1", "layers": rows,
            "size_arithmetic": ["conv1: ⌈28 / 1⌉ = 28 ('same' padding, kernel 3)", "pool1: (28 + 2·0 − 2) / 2 + 1 = 14"],
            "first_conv": {"max_abs_difference": 1.2e-7, "precision": "float32"}}


def write_experiment(root, dataset, arch, variant, seed, learning_rate, labels, templates, rng):
    experiment = root / f"results/experiments/{dataset}/{arch}/{variant}/seed{seed}"
    (experiment / "figures").mkdir(parents=True)
    size = 1 + int(arch[-2:])  # architectures differ in size and cost
    accuracy = float(np.clip(0.9 - 40 * abs(learning_rate - 0.002) + 0.004 * size + rng.normal(0, 0.01), 0, 1))
    probabilities = rng.dirichlet(np.ones(10) * 0.3, len(labels))
    right = rng.random(len(labels)) < accuracy
    probabilities[right, labels[right]] += 2  # the right class wins on about `accuracy` of the images
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    np.savez_compressed(experiment / "test_predictions.npz", labels=labels, probabilities=probabilities)
    per_class = {"macro avg": {"precision": accuracy, "recall": accuracy, "f1-score": accuracy}}
    (experiment / "metrics.json").write_text(json.dumps({
        "accuracy": accuracy, "loss": 1 - accuracy, "top5_accuracy": None, "per_class": per_class,
        "expected_calibration_error": 0.05, "test_images": len(labels), "flops_per_image": 1e6 * size,
        "model_bytes": 200_000 * size, "parameters": 50_186 * size, "confusion_matrix": [[36] * 10] * 10, "class_names": [str(i) for i in range(10)],
    }))
    settings = {"epochs": 20, "learning_rate": learning_rate, "augmentation": {"rotation_range": 0}}
    (experiment / "train_meta.json").write_text(json.dumps({
        "dataset": dataset, "architecture": arch, "variant": variant, "seed": seed,
        "variant_overrides": {} if variant == "default" else {"learning_rate": learning_rate},
        "settings": settings, "config_hash": hashlib.sha256(variant.encode()).hexdigest()[:12], "parameters": 50_186 * size,
        "epochs_run": 20, "best_epoch": 18, "train_seconds": 30.0 * size ** 0.7 + rng.uniform(0, 5), "images_per_second": 1000.0,
        "input_shape": [28, 28, 1], "threads": 2, "precision": "float32", "precision_reason": "generated",
        "environment": {"gpus": [], "processor": cpu_model(), "cpu_count": 2, "tensorflow": "2.21.0", "keras": "3"},
    }))
    (experiment / "anatomy.json").write_text(json.dumps(anatomy_of(arch), ensure_ascii=False))
    shutil.copy(templates["curves"].parent / "history.csv", experiment / "history.csv")
    figures = {}
    for kind, template in templates.items():
        target = experiment / "figures" / f"{kind}.png"
        target.hardlink_to(template)
        figures[kind] = {"file": target.name}
    heat = [np.round(np.outer(np.hanning(7), np.hanning(7)) * rng.uniform(0.5, 1), 2).tolist() for _ in range(8)]
    figures["gradcam"].update(layer="conv2", heat=heat, predicted=probabilities[:8].argmax(axis=1).tolist())
    (experiment / "figures" / "figures.json").write_text(json.dumps(figures))
    for stage in ("train", "evaluate"):
        bench = root / f"results/benchmarks/{stage}/{dataset}/{arch}/{variant}/seed{seed}.tsv"
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\t900\n")
    return experiment


def write_study(root, architectures=10, variants=2, seeds=5):
    """Every result file of a generated study under `root`; returns the summary's inputs (the
    experiments' folders) and build_report's parameters, as the rules pass them (paths relative to root)."""
    from convbench.base.config import sweep_variants
    from convbench.data.datasets import export_digits, prepare_dataset
    from convbench.data.prepared import load_prepared

    rng = np.random.default_rng(0)
    templates = figure_templates(Path(tempfile.mkdtemp()), rng)
    rates = [float(f"{rate:.2g}") for rate in np.geomspace(3e-4, 3e-3, variants - 1)]
    sweep = {"learning_rate": rates} if variants > 1 else {}
    study_variants = {"default": {}, **sweep_variants(sweep)}
    names = [f"arch{index:02d}" for index in range(architectures)]

    prepared = root / "results/prepared/digits/28x28x1"
    prepared.parent.mkdir(parents=True)
    export_digits(root / "digits.npz")
    prepare_dataset("digits", [root / "digits.npz"], "28x28x1", prepared, f"{prepared}.json",
                    split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="unit")
    labels = load_prepared(prepared, f"{prepared}.json").labels("test")
    experiments = [write_experiment(root, "digits", arch, variant, seed, overrides.get("learning_rate", 0.001),
                                    labels, templates, rng)
                   for arch in names for variant, overrides in study_variants.items()
                   for seed in range(1, seeds + 1)]
    cost = [{"dataset": "digits", "architecture": arch, "variant": variant, "latency_ms": (1 + int(arch[-2:])) ** 0.8 * (1 + 0.1 * rng.random()),
             "latency_ms_min": 0.9, "latency_ms_max": 2.1, "throughput_images_per_second": 5000.0,
             "measured_on": f"CPU: {cpu_model()}, 2 threads"}
            for arch in names for variant in study_variants]
    (root / "results/cost").mkdir(parents=True)
    pd.DataFrame(cost).to_csv(root / "results/cost/digits.csv", index=False)
    # published accuracies, as the tutorial studies give: two more columns on the leaderboard's first screen
    references = {arch: {"digits": {"accuracy": 0.9, "source": "Doe et al. 2020, Table 1: a published figure"}}
                  for arch in names[::2]}
    config = {"datasets": ["digits"], "architectures": names, "seeds": list(range(1, seeds + 1)),
              "variants": {"default": {}}, "sweep": sweep, "references": references,
              # a study that reproduces a recipe, as the tutorial studies do: the report's first line names it
              "reproduces": {"recipe": "a published recipe <with markup>", "link": "../README.md#the-tutorial-exactly",
                             "deviations": [{"setting": "dataset", "recipe": "MNIST", "here": "digits",
                                             "reason": "offline & small"}]}}
    parameters = {"summary_csv": "results/summary.csv", "dataset_manifests": ["results/prepared/digits/28x28x1.json"],
                  "augmentation_previews": [], "config": config, "variants": study_variants}
    return [e.relative_to(root) for e in experiments], parameters


def build(root, experiments, parameters):
    """summary.csv and report.html of a written study, as the summarize and build_report rules make
    them; returns the seconds each took."""
    from convbench.report.build import build_report
    from convbench.report.summary import write_summary

    here = os.getcwd()
    os.chdir(root)
    try:
        start = time.perf_counter()
        write_summary([e / "metrics.json" for e in experiments], [e / "train_meta.json" for e in experiments],
                      [str(e).replace("experiments", "benchmarks/train") + ".tsv" for e in experiments],
                      ["results/cost/digits.csv"], "results/summary.csv", varied_settings=["learning_rate"])
        summary_seconds = time.perf_counter() - start
        start = time.perf_counter()
        build_report(PROJECT / "workflow/notebooks/report.ipynb", "results/report/report.ipynb", "results/report.html",
                     parameters=parameters)
        return summary_seconds, time.perf_counter() - start
    finally:
        os.chdir(here)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architectures", type=int, default=10)
    parser.add_argument("--variants", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--keep", help="write the study here and keep it (default: a temporary folder)")
    args = parser.parse_args()

    root = Path(args.keep or tempfile.mkdtemp(prefix="report-scale-"))
    experiments, parameters = write_study(root, args.architectures, args.variants, args.seeds)
    print(f"{len(experiments)} experiments written under {root}")
    summary_seconds, report_seconds = build(root, experiments, parameters)
    size = (root / "results/report.html").stat().st_size
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} cores")
    print(f"{'experiments':>12} {'summary (s)':>12} {'report (s)':>11} {'total (s)':>10} {'report.html (MB)':>17}")
    print(f"{len(experiments):>12} {summary_seconds:>12.1f} {report_seconds:>11.1f} "
          f"{summary_seconds + report_seconds:>10.1f} {size / 1e6:>17.1f}")
    print("targets (issue 14): 100 experiments, report.html <= 15 MB, built in <= 90 s")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
