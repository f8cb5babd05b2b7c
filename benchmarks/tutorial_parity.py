"""Tutorial parity: the tutorial's own Keras code (benchmarks/tutorial_code.py) beside convbench's tutorial
study, on the same data split and seeds; test accuracy per seed and mean ± std side by side.

    python benchmarks/tutorial_parity.py [--study studies/tutorial.yaml] [--seeds 1 2 3] [--workdir DIR]
    python benchmarks/tutorial_parity.py --study studies/cifar10-tutorial.yaml   # where CIFAR-10 can be fetched

1. convbench: the study runs as a user runs it (`snakemake --cores 2 --configfile STUDY`) in a copy of
   the workflow; each experiment's test accuracy is read from its metrics.json, the study's wall time printed.
2. The tutorial's code: for every architecture, variant and seed, a fresh process seeds Keras
   (keras.utils.set_random_seed) and runs the tutorial's model, compile and fit on NumPy arrays of the
   prepared data the study trained on (training + validation arrays in their order, so that
   validation_split=0.1 holds out the study's validation images; the same test images), float32, 2 threads.
   Where the study states a deviation the code can take (digits: bn_cnn's momentum 0.9 and bias-free
   convolutions; no flips), it is applied, so the two columns compare the same recipe; the deeper CNN as the
   tutorial writes it (bn_cnn_tutorial) is run on the default variant as well, for the deviation's reason.
A row is "matched" when convbench's mean lies within one seed standard deviation of the tutorial code's.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent

# study -> variant -> how the tutorial's code trains it (names in WORKER)
RECIPES = {
    "tutorial.yaml": {"default": "mnist", "augmented": "mnist_augmented", "callbacks": "mnist_callbacks"},
    "cifar10-tutorial.yaml": {"default": "cifar10"},
}
# the study's architecture -> the tutorial's network with the study's stated deviation applied
NETWORKS = {"simple_cnn": "classic_convnet(shape, classes)",
            "bn_cnn": "deeper_cnn(shape, classes, momentum=0.9, use_bias=False)",
            "bn_cnn_tutorial": "deeper_cnn(shape, classes)"}

WORKER = r"""
import json, sys
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(2)
sys.path.insert(0, {benchmarks!r})
sys.path.insert(0, {package!r})
import numpy as np
from tensorflow import keras
from convbench.data.prepared import load_prepared
from tutorial_code import *

data = load_prepared({prepared!r}, {manifest!r})
(x_train, y_train), (x_val, y_val), (x_test, y_test) = (data.scaled(split) for split in ("train", "val", "test"))
classes = data.manifest["num_classes"]
y_train, y_val, y_test = (keras.utils.to_categorical(y, classes) for y in (y_train, y_val, y_test))
shape = x_train.shape[1:]
keras.utils.set_random_seed({seed})
model = compile_model({network})
recipe = {recipe!r}
if recipe.startswith("mnist"):
    if recipe == "mnist_augmented":  # the tutorial's ImageDataGenerator without flips (the study's deviation)
        augmentation = ImageDataGenerator(rotation_range=15, width_shift_range=0.1, height_shift_range=0.1)
        fit_augmented(model, augmentation, x_train, y_train, x_val, y_val, batch_size=128, epochs=10)
    else:  # validation_split=0.1 of the training arrays in their order: the study's validation images
        x, y = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
        callbacks = tutorial_callbacks() if recipe == "mnist_callbacks" else None
        fit_mnist_recipe(model, x, y, epochs=50 if callbacks else 10, callbacks=callbacks)
else:
    fit_cifar10_recipe(model, x_train, y_train, x_val, y_val)
print(json.dumps(float(model.evaluate(x_test, y_test, verbose=0)[1])))
"""


def run_study(study, workdir, seeds):
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(PROJECT / name, workdir / name)
    for name in ("workflow", "envs", "profiles", "studies"):
        shutil.copytree(PROJECT / name, workdir / name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", f"studies/{study}"]
    if seeds:
        command += ["--config", f"seeds=[{', '.join(map(str, seeds))}]"]
    started = time.monotonic()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    if result.returncode:
        sys.exit(result.stdout[-3000:] + result.stderr[-3000:])
    return time.monotonic() - started


def tutorial_accuracy(workdir, prepared, recipe, architecture, seed):
    manifest = str(prepared) + ".json"
    code = WORKER.format(benchmarks=str(PROJECT / "benchmarks"), package=str(PROJECT / "workflow"),
                         prepared=str(prepared), manifest=manifest, seed=seed, network=NETWORKS[architecture],
                         recipe=recipe)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=workdir)
    if result.returncode:
        sys.exit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def summary(values):
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std, f"{mean:.2%} ± {std:.2%}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="studies/tutorial.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the study's")
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()
    study = Path(args.study).name
    config = yaml.safe_load((PROJECT / "studies" / study).read_text())
    seeds = args.seeds or config["seeds"]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tutorial-parity-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"convbench: snakemake --configfile studies/{study} in {workdir} ...", flush=True)
    wall = run_study(study, workdir, args.seeds)
    print(f"the study took {wall / 60:.1f} min on 2 cores", flush=True)

    dataset = config["datasets"][0]
    rows = []
    for architecture in config["architectures"]:
        for variant, recipe in RECIPES[study].items():
            experiments = workdir / "results" / "experiments" / dataset / architecture / variant
            ours = [json.loads((experiments / f"seed{seed}" / "metrics.json").read_text())["accuracy"]
                    for seed in seeds]
            prepared = prepared_folder(workdir, dataset)
            as_written = architecture == "bn_cnn" and variant == "default"  # the deviation's reason, measured
            networks = [architecture] + (["bn_cnn_tutorial"] if as_written else [])
            for network in networks:
                theirs = [tutorial_accuracy(workdir, prepared, recipe, network, seed) for seed in seeds]
                rows.append((architecture, variant, network, theirs, ours if network == architecture else None))
                print_row(*rows[-1])
    print("\n| study architecture | variant | tutorial's code (network) | tutorial's code, per seed "
          "| convbench, per seed | tutorial's code | convbench | within 1 std |\n|---|---|---|---|---|---|---|---|")
    for architecture, variant, network, theirs, ours in rows:
        their_mean, their_std, their_text = summary(theirs)
        our_text = summary(ours)[2] if ours else "—"
        within = ("yes" if abs(summary(ours)[0] - their_mean) <= their_std else "no") if ours else "—"
        per_seed = lambda values: " / ".join(f"{value:.2%}" for value in values) if values else "—"  # noqa: E731
        print(f"| {architecture} | {variant} | {NETWORKS[network].split('(')[0]}"
              f"{' as written' if network == 'bn_cnn_tutorial' else ''} | {per_seed(theirs)} | {per_seed(ours)} "
              f"| {their_text} | {our_text} | {within} |")


def prepared_folder(workdir, dataset):
    """The prepared data the study's experiments read (one spec: every architecture here is fed 28x28)."""
    manifests = sorted((workdir / "results" / "prepared" / dataset).glob("*.json"))
    if len(manifests) != 1:
        sys.exit(f"expected one prepared copy of {dataset}, found {[m.name for m in manifests]}")
    return manifests[0].with_suffix("")


def print_row(architecture, variant, network, theirs, ours):
    print(f"{architecture:>15} {variant:>10} {network:>16}: tutorial's code {summary(theirs)[2]}"
          + (f", convbench {summary(ours)[2]}" if ours else ""), flush=True)


if __name__ == "__main__":
    main()
