"""Datasets larger than memory: prepared shards read per batch (convbench.data.prepared) vs held in memory.

    python benchmarks/larger_than_memory.py reads [--before 969c3ca] [--rounds 5]
    python benchmarks/larger_than_memory.py throughput [--epochs 3]
    python benchmarks/larger_than_memory.py folder [--images 50000 200000] [--size 160]

reads: the cost of reading every batch from the shards, in one process (separate processes vary by
    +-20 % on a VM; one process sees the same machine): one compiled simple_cnn (float32, batch 128)
    trains alternately with the training and validation splits in memory, read from the shards, and
    read by the reader of --before (that commit's convbench/data/prepared.py); images/s (validation
    included) of each mode, median over --rounds, and the median of each round's ratio to in memory.
throughput: training images/s of the same run (simple_cnn, float32, batch 128) with the training split
    held in memory (the default for data that fits) and read from its shards per batch, on digits
    (28x28x1, 8 x --epochs epochs: they are short) and on a CIFAR-sized set (50,000 generated 32x32x3
    images); each run in its own process, the median epoch, best of --rounds processes per mode.
folder: a generated image folder of N images at `--size` px (JPEG, every 10th PNG; generated once,
    cached in --folder), prepared by convbench, then one epoch trained reading the shards per batch;
    wall time and peak resident memory (ru_maxrss from wait4) of each in its own process. Run it for
    N and 4N: the peaks stay the same when memory does not grow with the dataset.
Prints the machine's CPU.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

from prepare_image_folder import generate, measure  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = str(PROJECT / "workflow")
# A small convnet for 160 px inputs: the benchmark is about data, not about a model's FLOPs.
SMALL = {"layers": [{"Conv2D": {"filters": 32, "kernel_size": 3, "strides": 2, "activation": "relu"}},
                    {"MaxPooling2D": {"pool_size": 2}},
                    {"Conv2D": {"filters": 64, "kernel_size": 3, "activation": "relu"}},
                    "GlobalAveragePooling2D"], "rgb": True, "min_size": 32}

TRAIN = """
import json, sys
sys.path.insert(0, {package!r})
from convbench.base.runtime import configure_tensorflow
strategy = configure_tensorflow(threads=2, seed=1, deterministic=True)
from convbench.models.custom import custom_architectures
from convbench.data.prepared import load_prepared
from convbench.train.training import train_experiment
arch = {arch!r} if isinstance({arch!r}, str) else custom_architectures({{"small": {arch!r}}})["small"]
data = load_prepared({data!r}, {data!r} + ".json")
settings = {{"epochs": {epochs}, "batch_size": {batch}, "optimizer": "adam", "learning_rate": 1e-3, "deterministic": True,
             "augmentation": None, "precision": "float32"}}
train_experiment(data, arch, seed=1, settings=settings, strategy=strategy, model_path={out!r} + "/m.keras",
                 history_path={out!r} + "/h.csv", meta_path={out!r} + "/meta.json", checkpoint_dir={out!r} + "/ckpt",
                 checkpoint_interval=1e9, in_memory={in_memory})
"""

# The same run at the commit given by --before, whose prepared data was one .npz held in memory.
TRAIN_BEFORE = """
import sys
sys.path.insert(0, {package!r})
from convbench.base.runtime import configure_tensorflow
strategy = configure_tensorflow(threads=2, seed=1, deterministic=True)
from convbench.data.prepared import load_prepared
from convbench.train.training import train_experiment
data = load_prepared({data!r} + ".npz", {data!r} + ".json")
settings = {{"epochs": {epochs}, "batch_size": {batch}, "optimizer": "adam", "learning_rate": 1e-3, "deterministic": True,
             "augmentation": None, "precision": "float32"}}
train_experiment(data, {arch!r}, seed=1, settings=settings, strategy=strategy, model_path={out!r} + "/m.keras",
                 history_path={out!r} + "/h.csv", meta_path={out!r} + "/meta.json", checkpoint_dir={out!r} + "/ckpt",
                 checkpoint_interval=1e9)
"""

PREPARE = """
import sys
sys.path.insert(0, {package!r})
from convbench.data.catalog import resolve_datasets
from convbench.data.datasets import prepare_dataset
study = resolve_datasets({{"bench": {{"format": "image_folder", "path": {root!r}, "image_size": {size}, "color_mode": "rgb"}}}})
prepare_dataset(study["bench"], [{root!r}], "{size}x{size}x3", {data!r}, {data!r} + ".json",
                split_seed=0, test_fraction=0.1, validation_fraction=0.05, scaling="unit")
"""


def train(data, out, *, arch="simple_cnn", epochs=3, batch=128, in_memory=True, before=None):
    """(images/s of the median epoch, wall s, peak RSS MB) of one training process; `before`: the
    package folder of an earlier checkout, trained on the .npz beside `data` (before_format)."""
    template, package = (TRAIN_BEFORE, before) if before else (TRAIN, PACKAGE)
    code = template.format(package=package, arch=arch, data=str(data), epochs=epochs, batch=batch, out=str(out),
                           in_memory=in_memory)
    with open(Path(out).parent / "worker.log", "a") as log:  # TensorFlow's start-up lines
        seconds, rss = measure(code, log)
    meta = json.loads((Path(out) / "meta.json").read_text())
    expected = "in memory" if in_memory else "read from its shards per batch"
    assert before or meta["training_data"] == expected, meta["training_data"]
    return meta["images_per_second"], seconds, rss


def cifar_sized(directory, count=50_000):
    """A prepared CIFAR-sized set: `count` generated 32x32x3 images of 10 classes (45k/5k split + a small test)."""
    import numpy as np

    from convbench.data.datasets import write_prepared

    rng = np.random.default_rng(0)
    labels = np.arange(count) % 10
    images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    cut = int(count * 0.9)
    splits = {"train": (labels[:cut], [images[:cut]]), "val": (labels[cut:], [images[cut:]]),
              "test": (labels[:1000], [images[:1000]])}
    manifest = {"dataset": "cifar_sized", "source_sha256": {"generated": "seed 0"},
                "class_names": [str(i) for i in range(10)], "num_classes": 10, "input_shape": [32, 32, 3], "preprocessing": {"scaling": "unit"}}
    write_prepared(directory, f"{directory}.json", splits, manifest)
    return directory


def digits(directory):
    from convbench.data.datasets import export_digits, prepare_dataset

    export_digits(directory.parent / "digits.npz")
    prepare_dataset("digits", [directory.parent / "digits.npz"], "28x28x1", directory, f"{directory}.json",
                    split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="unit")
    return directory


def before_format(data):
    """The prepared data as the commit before shards stored it: one .npz of every split, beside the manifest."""
    import numpy as np

    from convbench.data.prepared import load_prepared

    prepared = load_prepared(data, f"{data}.json")
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = prepared.raw(split)
    np.savez(f"{data}.npz", **arrays)


def checkout(commit, folder):
    """The package folder of `commit`, checked out as a git worktree in `folder`."""
    import subprocess

    subprocess.run(["git", "-C", str(PROJECT), "worktree", "add", "--detach", str(folder), commit], check=True,
                   capture_output=True)
    return str(folder / "workflow")


def throughput(args):
    before_header = f"{'before img/s':>14}" if args.before else ""
    print(f"{'data':<34}{before_header}{'in memory img/s':>16}{'from shards img/s':>19}{'shards / memory':>17}"
          + (f"{'memory / before':>17}" if args.before else ""))
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        package_before = checkout(args.before, work / "before") if args.before else None
        cases = {"digits": ("digits 28x28x1 (1,293 train)", lambda: digits(work / "digits" / "d"), args.epochs * 8),
                 "cifar": ("CIFAR-sized 32x32x3 (45,000 train)", lambda: cifar_sized(work / "cifar"), args.epochs)}
        for key in args.data:
            name, make, epochs = cases[key]
            data, best = make(), {}
            modes = (True, False, "before") if args.before else (True, False)
            if args.before:
                before_format(data)
            for mode in modes * args.rounds:  # alternated: drift on the machine hits every mode alike
                speed, _, _ = train(data, work / f"run-{mode}", epochs=epochs, in_memory=mode is True,
                                    before=package_before if mode == "before" else None)
                best[mode] = max(best.get(mode, 0), speed)
            line = f"{name:<34}" + (f"{best['before']:>14,.0f}" if args.before else "")
            line += f"{best[True]:>16,.0f}{best[False]:>19,.0f}{best[False] / best[True]:>17.2f}"
            print(line + (f"{best[True] / best['before']:>17.2f}" if args.before else ""), flush=True)
    if args.before:
        import subprocess

        subprocess.run(["git", "-C", str(PROJECT), "worktree", "prune"], check=True)


def reader_before(commit):
    """PreparedData as `commit` had it: its convbench/data/prepared.py loaded beside today's package."""
    import importlib.util
    import subprocess

    source = subprocess.run(["git", "-C", str(PROJECT), "show", f"{commit}:workflow/convbench/data/prepared.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "prepared_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("convbench.data.prepared_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its relative imports resolve in today's convbench.data
    return module.PreparedData


def timed_epochs(model, data, in_memory, epochs, first_epoch):
    """images/s of `epochs` training epochs with validation, as fit_phases feeds them."""
    import time

    from convbench.evaluate.inference import split_batches
    from convbench.train.training import training_dataset

    labels = data.labels("train")
    images = data.images("train") if in_memory else (lambda index: data.images("train", index))
    steps = -(-len(labels) // 128)
    train_ds = training_dataset(images, labels, data.manifest, num_classes=data.num_classes, batch_size=128, seed=1,
                                first_epoch=first_epoch, epochs=first_epoch + epochs)
    val_ds = split_batches(data, "val", 256, with_labels=True, in_memory=in_memory)
    start = time.perf_counter()
    model.fit(train_ds, initial_epoch=first_epoch, epochs=first_epoch + epochs, steps_per_epoch=steps,
              validation_data=val_ds, shuffle=False, verbose=0)
    seconds = time.perf_counter() - start
    data.close()
    return epochs * len(labels) / seconds


def reads(args):
    import gc
    import statistics

    from convbench.base.runtime import configure_tensorflow

    configure_tensorflow(threads=2, seed=1, deterministic=True)
    from convbench.data.prepared import load_prepared
    from convbench.models.architectures import create_model
    from convbench.train.training import compile_model

    modes = {"memory": True, "shards": False}
    if args.before:
        modes[f"shards@{args.before[:7]}"] = reader_before(args.before)
    print(f"{'data':<36}" + "".join(f"{mode + ' img/s':>22}" for mode in modes)
          + "".join(f"{mode + ' / memory':>24}" for mode in list(modes)[1:]))
    settings = {"optimizer": "adam", "learning_rate": 1e-3}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        cases = {"digits": ("digits 28x28x1 (1,293 train)", lambda: digits(work / "digits" / "d"), 40),
                 "cifar": ("CIFAR-sized 32x32x3 (45,000 train)", lambda: cifar_sized(work / "cifar"), 1)}
        for key in args.data:  # a measurement is about 10 s: digits' epochs are short
            name, make, epochs = cases[key]
            directory = make()
            today = load_prepared(directory, f"{directory}.json")
            readers = {mode: today if isinstance(reader, bool) else reader(today.manifest, Path(directory))
                       for mode, reader in modes.items()}  # an earlier reader: its PreparedData class
            model = create_model("simple_cnn", today.input_shape, today.num_classes)
            compile_model(model, settings, 1e-3, "constant", 1, 1)
            timed_epochs(model, today, True, 1, 0)  # compiles the step functions
            speeds, epoch = {mode: [] for mode in modes}, 1
            for turn in range(args.rounds):
                order = list(modes)[turn % len(modes):] + list(modes)[: turn % len(modes)]  # each mode goes first
                for mode in order:
                    gc.collect()  # the last measurement's pipelines
                    speeds[mode].append(timed_epochs(model, readers[mode], modes[mode] is True, epochs, epoch))
                    epoch += epochs
            # ratios within a round: the machine drifts between rounds, less within one
            ratios = {mode: statistics.median(a / b for a, b in zip(speeds[mode], speeds["memory"])) for mode in modes}
            median = {mode: statistics.median(values) for mode, values in speeds.items()}
            print(f"{name:<36}" + "".join(f"{median[mode]:>22,.0f}" for mode in modes)
                  + "".join(f"{ratios[mode]:>24.3f}" for mode in list(modes)[1:]), flush=True)
            if args.verbose:
                print("  every round:", {mode: [round(v) for v in values] for mode, values in speeds.items()})


def folder(args):
    print(f"{'images':>8}{'GB as uint8':>12}{'prepare s':>11}{'prepare peak MB':>17}"
          f"{'train s':>9}{'train img/s':>13}{'train peak MB':>15}")
    for count in args.images:
        root = args.folder / f"{count}-{args.size}"
        generate(root, count, size=args.size, png_every=10)
        with tempfile.TemporaryDirectory(dir=args.folder) as work:
            data = Path(work) / "prepared"
            prepare_seconds, prepare_rss = measure(PREPARE.format(package=PACKAGE, root=str(root), size=args.size,
                                                                  data=str(data)), open(Path(work) / "prepare.log", "w"))
            speed, train_seconds, train_rss = train(data, Path(work), arch=SMALL, epochs=1, batch=64, in_memory=False)
        gigabytes = count * args.size**2 * 3 / 1e9
        print(f"{count:>8,}{gigabytes:>12.2f}{prepare_seconds:>11.0f}{prepare_rss:>17,.0f}"
              f"{train_seconds:>9.0f}{speed:>13,.0f}{train_rss:>15,.0f}", flush=True)


def main():
    from convbench.base.runtime import cpu_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    same = commands.add_parser("reads")
    same.add_argument("--rounds", type=int, default=5, help="measurements per mode; the median counts")
    same.add_argument("--data", nargs="+", choices=["digits", "cifar"], default=["digits", "cifar"])
    same.add_argument("--before", help="a commit whose shard reader to compare with (e.g. 969c3ca)")
    same.add_argument("--verbose", action="store_true", help="print every round's figures")
    speed = commands.add_parser("throughput")
    speed.add_argument("--epochs", type=int, default=3)
    speed.add_argument("--rounds", type=int, default=2, help="processes per mode; the best counts")
    speed.add_argument("--data", nargs="+", choices=["digits", "cifar"], default=["digits", "cifar"])
    speed.add_argument("--before", help="a commit to compare with (e.g. the one before shards), checked out aside")
    large = commands.add_parser("folder")
    large.add_argument("--images", type=int, nargs="+", default=[50_000, 200_000])
    large.add_argument("--size", type=int, default=160)
    large.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "convbench-large-folder")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, 2 threads")
    if args.command == "reads":
        reads(args)
    elif args.command == "throughput":
        throughput(args)
    else:
        args.folder.mkdir(parents=True, exist_ok=True)
        folder(args)


if __name__ == "__main__":
    main()
