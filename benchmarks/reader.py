"""The training input pipeline alone (no model): can it feed a GPU?

    python benchmarks/reader.py [--before COMMIT] [--rounds 3] [--images 100000]

Reads convbench.train.training.training_dataset over a prepared CIFAR-sized set (50,000 generated
32x32x3 images, 45,000 in the training split) and prints images/s for the training split
in memory / read from its shards x augmentation off / the tutorial's (ImageDataGenerator's rotation 15,
shifts 0.1, horizontal flips, `single_affine`) / the tutorial's placed on the model (`augment_on:
model`: the pipeline only reads; the augmentation is then the accelerator's work, timed apart below)
x batch 64 / 512, beside the GPU figures the pipeline must keep up with.

Each case reads whole epochs, --images images at least (a warm-up batch excluded), in its own process with 2 threads (the train
rule's default); the median of --rounds. With --before, the same cases run with that commit's package too,
alternating with this one's, and each row shows both and their ratio: one run, one machine.
Prints the machine's CPU.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "benchmarks"))
sys.path.insert(0, str(PROJECT / "workflow"))

# One H200, eager PyTorch on synthetic data, training steps (issue #44): what a GPU consumes.
GPU_IMAGES_PER_SECOND = {("bn_cnn", 64): 15_700, ("bn_cnn", 128): 25_600, ("bn_cnn", 512): 112_000,
                         ("simple_cnn", 128): 55_000, ("simple_cnn", 512): 212_000}
TUTORIAL_AUGMENTATION = {"rotation_range": 15, "width_shift_range": 0.1, "height_shift_range": 0.1,
                         "shear_range": 0, "zoom_range": 0, "horizontal_flip": True, "fill_mode": "nearest",
                         "single_affine": True}
CASES = [(source, augmentation, batch) for source in ("memory", "shards")
         for augmentation in ("off", "input", "model") for batch in (64, 512)]

WORKER = r"""
import inspect, json, math, sys, time
sys.path.insert(0, {package!r})
from convbench.base.runtime import configure_tensorflow
configure_tensorflow(threads=2, seed=0)
from convbench.data.prepared import load_prepared
from convbench.train import training
data = load_prepared({data!r}, {data!r} + ".json")
source, augmentation, batch = {case!r}
labels = data.labels("train")
images = data.images("train") if source == "memory" else (lambda index: data.images("train", index))
epochs = math.ceil(({images} + batch) / len(labels))
options = dict(num_classes=data.num_classes, batch_size=batch, seed=1, first_epoch=0, epochs=epochs)
if augmentation != "off":
    options["augmentation"] = {settings!r}
if augmentation == "model":
    if "augment_on" not in inspect.signature(training.training_dataset).parameters:
        print(json.dumps(None)); sys.exit()
    options["augment_on"] = "model"
stream = iter(training.training_dataset(images, labels, data.manifest, **options))
next(stream)  # warm-up: the first batch builds the pipeline
start, count = time.perf_counter(), 0
for x, _ in stream:  # to its end: a Python reader left mid-call when the interpreter exits aborts it
    count += int(x.shape[0])
print(json.dumps(count / (time.perf_counter() - start)))
"""

AUGMENT_ON_MODEL = r"""
import json, sys, time
sys.path.insert(0, {package!r})
from convbench.base.runtime import configure_tensorflow
configure_tensorflow(threads=2, seed=0)
import numpy as np, tensorflow as tf
from convbench.train.augmentation import ModelAugmentation
layer = ModelAugmentation({{"offset": [0.0], "scale": [1 / 255]}}, {settings!r}, seed=1, steps_per_epoch=100,
                          epochs=1000, image_side=32)
images = tf.constant(np.random.default_rng(0).integers(0, 256, ({batch}, 32, 32, 3), np.uint8))
step = tf.function(lambda x: layer(x, training=True))
step(images)
start, count = time.perf_counter(), 0
while count < {images}:
    step(images).numpy()
    count += {batch}
print(json.dumps(count / (time.perf_counter() - start)))
"""


def checkout(commit, into):
    Path(into).mkdir(parents=True)
    archive = subprocess.run(["git", "-C", PROJECT, "archive", commit, "workflow"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return str(Path(into) / "workflow")


def run(code):
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(packages, data, rounds, images):
    """{(package name, case): median images/s}, rounds alternating between the packages."""
    figures = {}
    for case in CASES:
        for _ in range(rounds):
            for name, package in packages.items():
                rate = run(WORKER.format(package=package, data=data, case=case, images=images,
                                         settings=TUTORIAL_AUGMENTATION))
                figures.setdefault((name, case), []).append(rate)
    return {key: None if None in rates else statistics.median(rates) for key, rates in figures.items()}


def table(figures, names):
    head = " | ".join(f"{name} images/s" for name in names)
    ratio = " | ratio" if len(names) == 2 else ""
    print(f"| training split | augmentation | batch | {head}{ratio} |")
    print("|---|---|---|" + "---|" * (len(names) + (len(names) == 2)))
    for source, augmentation, batch in CASES:
        rates = [figures[(name, (source, augmentation, batch))] for name in names]
        cells = " | ".join("—" if rate is None else f"{rate / 1000:.1f}k" for rate in rates)
        ratio = ""
        if len(names) == 2:
            ratio = " | —" if None in rates else f" | {rates[1] / rates[0]:.2f}x"
        where = {"off": "off", "input": "tutorial's, in tf.data (CPU)", "model": "tutorial's, on the model"}
        print(f"| {'in memory' if source == 'memory' else 'from shards'} | {where[augmentation]} | {batch} | "
              f"{cells}{ratio} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="a commit to compare with, in the same run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=90_000, help="images read per case, at least")
    args = parser.parse_args()

    from convbench.base.runtime import cpu_model
    from larger_than_memory import cifar_sized

    with tempfile.TemporaryDirectory() as folder:
        packages = {"now": str(PROJECT / "workflow")}
        if args.before:
            packages = {args.before: checkout(args.before, Path(folder) / "before"), **packages}
        data = str(cifar_sized(Path(folder) / "cifar_sized"))
        figures = measure(packages, data, args.rounds, args.images)
        print(f"CPU: {cpu_model()}, 2 threads; {args.images} images read per case at least, median of {args.rounds} "
              "processes")
        table(figures, list(packages))
        on_model = {batch: run(AUGMENT_ON_MODEL.format(package=packages["now"], settings=TUTORIAL_AUGMENTATION,
                                                       batch=batch, images=args.images // 4))
                    for batch in (64, 512)}
    print("\nThe tutorial's augmentation as a layer of the model (ModelAugmentation: scale, transform), on this CPU "
          "standing in for the accelerator: " + ", ".join(f"{rate / 1000:.1f}k images/s at batch {batch}"
                                                          for batch, rate in on_model.items()))
    print("\nWhat one H200 trains (issue #44; eager PyTorch, synthetic data): " + ", ".join(
        f"{arch} {rate / 1000:.1f}k at batch {batch}" for (arch, batch), rate in GPU_IMAGES_PER_SECOND.items()))


if __name__ == "__main__":
    main()
