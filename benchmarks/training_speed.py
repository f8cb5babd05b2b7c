"""Training speed: convbench's engine vs the tutorial's plain `model.fit(numpy arrays)`, same model and data.

Runs, for each case, the plain fit and the engine one after the other in fresh processes
(2 threads each, the train rule's default), and prints images/s per epoch and their ratio:

  plain    x = images.astype("float32") / 255; model.fit(x, y, batch_size=128, epochs=E, shuffle=True)
  engine   convbench.training.training_dataset (uint8 in memory, per-epoch stateless shuffle, one
           stream with steps_per_epoch, autotune off) + model.fit, as train_model runs it, with op
           determinism on (the default)

Cases (the issue's): simple_cnn on MNIST-shaped data (60,000 x 28x28x1) and bn_cnn on
CIFAR-shaped data (50,000 x 32x32x3); synthetic pixels, since only speed is measured.

    python benchmarks/training_speed.py [--runs 5] [--epochs 3] [--images N] [--precisions float32 mixed_bfloat16]
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
CASES = {"simple_cnn": (60_000, 28, 1), "bn_cnn": (50_000, 32, 3)}

WORKER = r"""
import json, sys, time
sys.path.insert(0, {package!r})
import numpy as np
from convbench.runtime import configure_tensorflow, set_precision
configure_tensorflow(threads=2, seed=0, deterministic={deterministic})
set_precision({precision!r})  # an explicit precision: no auto choice
import keras
from convbench.architectures import create_model
from convbench.training import training_dataset, make_optimizer

rng = np.random.default_rng(0)
count, size, channels = {count}, {size}, {channels}
images = rng.integers(0, 256, (count, size, size, channels), dtype=np.uint8)
labels = rng.integers(0, 10, count)
model = create_model({arch!r}, (size, size, channels), 10)
model.compile(optimizer=make_optimizer({{"optimizer": "adam"}}, 1e-3), loss="categorical_crossentropy", metrics=["accuracy"])

class Timer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds, self.last = [], time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.seconds.append(now - self.last)  # includes any idle time between epochs
        self.last = now

timer = Timer()
if {method!r} == "plain":
    x = images.astype("float32") / 255
    y = keras.utils.to_categorical(labels, 10)
    model.fit(x, y, batch_size=128, epochs={epochs}, shuffle=True, verbose=0, callbacks=[timer])
else:
    manifest = {{"preprocessing": {{"offset": [0.0] * channels, "scale": [1 / 255] * channels}}}}
    ds = training_dataset(images, labels, manifest, num_classes=10, batch_size=128, seed=0, first_epoch=0,
                          epochs={epochs})
    model.fit(ds, epochs={epochs}, steps_per_epoch=-(-count // 128), verbose=0, callbacks=[timer])
print("RESULT", json.dumps([count / s for s in timer.seconds]))
"""


def measure(method, arch, precision, epochs, count):
    _, size, channels = CASES[arch]
    code = WORKER.format(package=str(PROJECT / "workflow"), method=method, arch=arch, precision=precision,
                         epochs=epochs, count=count, size=size, channels=channels,
                         deterministic=method == "engine")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line.split(" ", 1)[1])


def fmt(rates):
    return " ".join(f"{rate:7.0f}" for rate in rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, help="use this many images instead of the full 60,000 / 50,000")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--precisions", nargs="+", default=["float32"],
                        choices=["float32", "mixed_bfloat16", "mixed_float16"])
    args = parser.parse_args()

    for arch in args.cases:
        count = args.images or CASES[arch][0]
        for precision in args.precisions:
            print(f"\n{arch}, {count} images of {CASES[arch][1]}x{CASES[arch][1]}x{CASES[arch][2]}, {precision}, "
                  f"{args.epochs} epochs; images/s per epoch (epoch 1 includes tracing)")
            print(f"{'run':>4} {'plain model.fit':>{8 * args.epochs}} {'engine':>{8 * args.epochs}}"
                  f" {'best':>7} {'total':>7}")
            ratios_best, ratios_total = [], []
            for run in range(1, args.runs + 1):
                plain = measure("plain", arch, "float32", args.epochs, count)
                engine = measure("engine", arch, precision, args.epochs, count)
                best = max(engine) / max(plain)  # best epoch vs best epoch
                total = sum(count / r for r in plain) / sum(count / r for r in engine)  # wall time, stalls included
                ratios_best.append(best)
                ratios_total.append(total)
                print(f"{run:>4} {fmt(plain)} {fmt(engine)} {best:6.2f}x {total:6.2f}x", flush=True)
            print(f"engine / plain: best epoch min {min(ratios_best):.2f}x, median {statistics.median(ratios_best):.2f}x;"
                  f" whole fit min {min(ratios_total):.2f}x, median {statistics.median(ratios_total):.2f}x")


if __name__ == "__main__":
    main()
