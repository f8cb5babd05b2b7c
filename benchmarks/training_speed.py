"""Training speed: convbench's engine vs the tutorial's plain `model.fit(numpy arrays)`, same model and data.

Runs, for each case, the plain fit and the engine one after the other in fresh processes
(2 threads each, the train rule's default), and prints images/s per epoch and their ratio:

  plain    x = images.astype("float32") / 255; model.fit(x, y, batch_size=128, epochs=E, shuffle=True)
  engine   convbench.train.training.training_dataset (uint8 in memory, per-epoch stateless shuffle, one
           stream with steps_per_epoch, autotune off) + model.fit, as train_model runs it, with op
           determinism on (the default) and BatchNormalization on the fused kernel
           (convbench.models.fused_batchnorm)

Cases (the issue's): simple_cnn on MNIST-shaped data (60,000 x 28x28x1) and bn_cnn on
CIFAR-shaped data (50,000 x 32x32x3); synthetic pixels, since only speed is measured. resnet20
(CIFAR-shaped, 19 BatchNorm layers) on request.

    python benchmarks/training_speed.py [--runs 5] [--epochs 3] [--images N] [--precisions float32 auto]

`auto` is what `precision: auto` picks for the architecture on this machine. Each row also gives the
engine's best epoch as achieved GFLOP/s: FLOPs of one forward pass (TensorFlow's profiler, as the
report's FLOPs column) x 3 for training (forward, and backward for inputs and weights) x images/s,
next to the CPU's peak (printed with the facts it is computed from) and to the measured ceiling: a
2048x2048 matrix product in the same precision on the same 2 threads (TensorFlow, oneDNN), the densest
work these cores do. (A VM's cores may run above the clock /proc/cpuinfo reports, so the measured
ceiling is the fairer yardstick.) `--breakdown` also times one 128-image step of each case in parts
(forward; forward and gradients; the whole step with the optimizer) to show where a step's time goes.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
CASES = {"simple_cnn": (60_000, 28, 1), "bn_cnn": (50_000, 32, 3), "resnet20": (50_000, 32, 3)}
DEFAULT_CASES = ["simple_cnn", "bn_cnn"]

WORKER = r"""
import json, sys, time
sys.path.insert(0, {package!r})
import numpy as np
from convbench.base.runtime import configure_tensorflow, set_precision
configure_tensorflow(threads=2, seed=0, deterministic={deterministic})
set_precision({precision!r})  # an explicit precision: no auto choice
import keras
from convbench.models.architectures import create_model
from convbench.evaluate.evaluation import count_flops
from convbench.models.fused_batchnorm import fuse_batchnorm
from convbench.train.training import training_dataset, make_optimizer

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
    if {batchnorm!r} == "fused":  # as train_experiment does
        fuse_batchnorm(model)
    manifest = {{"preprocessing": {{"offset": [0.0] * channels, "scale": [1 / 255] * channels}}}}
    ds = training_dataset(images, labels, manifest, num_classes=10, batch_size=128, seed=0, first_epoch=0,
                          epochs={epochs})
    model.fit(ds, epochs={epochs}, steps_per_epoch=-(-count // 128), verbose=0, callbacks=[timer])
print("RESULT", json.dumps({{"rates": [count / s for s in timer.seconds], "flops": count_flops(model)}}))
"""


CEILING = r"""
import json, sys, time
sys.path.insert(0, {package!r})
from convbench.base.runtime import configure_tensorflow
configure_tensorflow(threads=2)
import tensorflow as tf
a, b = (tf.cast(tf.random.normal((2048, 2048)), {dtype!r}) for _ in range(2))
product = tf.function(lambda: tf.matmul(a, b), autograph=False)
product().numpy()
seconds = []
for _ in range(5):
    start = time.perf_counter()
    for _ in range(10):
        result = product()
    result.numpy()
    seconds.append((time.perf_counter() - start) / 10)
print("RESULT", json.dumps(2 * 2048**3 / min(seconds) / 1e9))
"""

BREAKDOWN = r"""
import json, sys, time
sys.path.insert(0, {package!r})
import numpy as np
from convbench.base.runtime import configure_tensorflow, set_precision
configure_tensorflow(threads=2, seed=0, deterministic=True)
set_precision({precision!r})
import tensorflow as tf, keras
from convbench.models.architectures import create_model
from convbench.models.fused_batchnorm import fuse_batchnorm
from convbench.train.training import make_optimizer

size, channels = {size}, {channels}
rng = np.random.default_rng(0)
x = tf.constant(rng.random((128, size, size, channels), dtype=np.float32))
y = tf.one_hot(rng.integers(0, 10, 128), 10)
model = create_model({arch!r}, (size, size, channels), 10)
if {batchnorm!r} == "fused":  # as the engine trains it
    fuse_batchnorm(model)
optimizer = make_optimizer({{"optimizer": "adam"}}, 1e-3)
optimizer.build(model.trainable_variables)
loss_of = keras.losses.CategoricalCrossentropy()

def part(name):
    @tf.function(autograph=False)
    def run():
        with tf.GradientTape() as tape:
            loss = loss_of(y, model(x, training=True))
        if name == "forward":
            return loss
        gradients = tape.gradient(loss, model.trainable_variables)
        if name == "step":
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss
        return tf.add_n([loss] + [tf.reduce_sum(g) * 0 for g in gradients])  # keeps every gradient
    return run

timings = {{}}
for name in ("forward", "gradients", "step"):
    run = part(name)
    for _ in range(3):
        run()
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range({steps}):
            loss = run()
        float(loss)
        seconds.append((time.perf_counter() - start) / {steps})
    timings[name] = min(seconds) * 1000
print("RESULT", json.dumps(timings))
"""


def run_worker(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line.split(" ", 1)[1])


def measured_ceiling(dtype):
    """GFLOP/s of a 2048x2048 matrix product in `dtype` on the train rule's 2 threads (best of 5)."""
    return run_worker(CEILING.format(package=str(PROJECT / "workflow"), dtype=dtype))


def step_breakdown(arch, precision, batchnorm):
    """Milliseconds of one 128-image step: forward, forward + gradients, the whole step (Adam)."""
    _, size, channels = CASES[arch]
    return run_worker(BREAKDOWN.format(package=str(PROJECT / "workflow"), arch=arch, precision=precision,
                                       batchnorm=batchnorm, size=size, channels=channels,
                                       steps=40 if arch == "simple_cnn" else 8))


def cpu_facts():
    """This CPU's peak float32 and bfloat16 GFLOP/s and the facts behind them.

    peak = physical cores x 2 FMA pipes x float32 lanes per pipe x 2 (multiply and add) x clock.
    Lanes: 16 with AVX-512 (8 on AMD Zen 4, whose AVX-512 runs on 256-bit pipes), else 8 (AVX2).
    bfloat16: AVX512_BF16's dot product does two bfloat16 products per float32 lane (2x); AMX-BF16's
    tile unit does 1,024 bfloat16 FLOPs per cycle per core. The clock is the one /proc/cpuinfo
    reports (a VM may turbo above it); the 2 FMA pipes are an assumption (true of current server cores).
    """
    text = Path("/proc/cpuinfo").read_text()
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    cores = len({(block.get("physical id"), block.get("core id")) for block in _processors(text)}) or 1
    amd_zen4 = fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"
    lanes = 8 if amd_zen4 or "avx512f" not in flags else 16
    ghz = float(fields.get("cpu MHz", 0)) / 1000
    fp32 = cores * 2 * lanes * 2 * ghz
    bf16 = cores * 1024 * ghz if "amx_bf16" in flags else 2 * fp32 if "avx512_bf16" in flags else fp32
    label = (f"{fields.get('model name')}: {cores} cores x 2 FMA pipes x {lanes} float32 lanes x 2 x {ghz:.2f} GHz"
             f" = {fp32:.0f} GFLOP/s float32, {bf16:.0f} GFLOP/s bfloat16"
             f" ({', '.join(sorted(flags & {'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16'}))})")
    return {"float32": fp32, "bfloat16": bf16}, label


def _processors(cpuinfo):
    for block in cpuinfo.strip().split("\n\n"):
        yield {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in block.splitlines())}


def resolve_precision(precision, arch):
    """The precision train_model would use: `auto` resolved as on this machine (no GPU)."""
    if precision != "auto":
        return precision
    sys.path.insert(0, str(PROJECT / "workflow"))
    from convbench.models.architectures import ARCHITECTURES
    from convbench.base.runtime import choose_precision, cpu_bf16_flags

    return choose_precision("auto", ARCHITECTURES[arch].bf16_keeps_accuracy, 0, cpu_bf16_flags())[0]


def measure(method, arch, precision, epochs, count, batchnorm="fused"):
    _, size, channels = CASES[arch]
    code = WORKER.format(package=str(PROJECT / "workflow"), method=method, arch=arch, precision=precision,
                         epochs=epochs, count=count, size=size, channels=channels, batchnorm=batchnorm,
                         deterministic=method == "engine")
    return run_worker(code)  # {"rates": images/s per epoch, "flops": per image, forward}


def fmt(rates):
    return " ".join(f"{rate:7.0f}" for rate in rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, help="use this many images instead of the full 60,000 / 50,000")
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, choices=list(CASES))
    parser.add_argument("--precisions", nargs="+", default=["float32"],
                        choices=["float32", "mixed_bfloat16", "mixed_float16", "auto"])
    parser.add_argument("--breakdown", action="store_true",
                        help="also time one step in parts: forward, gradients, optimizer")
    parser.add_argument("--batchnorm", choices=["fused", "keras"], default="fused",
                        help="keras: train BatchNormalization with Keras' own ops (before the fused kernel)")
    args = parser.parse_args()
    peaks, machine = cpu_facts()
    print(f"CPU peak: {machine}")
    ceilings = {dtype: measured_ceiling(dtype) for dtype in peaks}
    print("Measured ceiling: 2048x2048 matrix product on 2 threads, " + ", ".join(
        f"{dtype} {ceiling:.0f} GFLOP/s ({ceiling / peaks[dtype]:.0%} of its peak)"
        for dtype, ceiling in ceilings.items()))

    for arch in args.cases:
        count = args.images or CASES[arch][0]
        for requested in args.precisions:
            precision = resolve_precision(requested, arch)
            unit = "bfloat16" if "bfloat16" in precision else "float32"
            peak, ceiling = peaks[unit], ceilings[unit]
            print(f"\n{arch}, {count} images of {CASES[arch][1]}x{CASES[arch][1]}x{CASES[arch][2]}, {precision}"
                  f"{' (auto)' if requested == 'auto' else ''}, {args.epochs} epochs, BatchNorm {args.batchnorm};"
                  f" images/s per epoch (epoch 1 includes tracing)")
            if args.breakdown:
                parts = step_breakdown(arch, precision, args.batchnorm)
                print(f"one 128-image step, engine's precision: forward {parts['forward']:.1f} ms;"
                      f" forward and gradients {parts['gradients']:.1f} ms;"
                      f" whole step with Adam {parts['step']:.1f} ms")
            print(f"{'run':>4} {'plain model.fit':>{8 * args.epochs}} {'engine':>{8 * args.epochs}}"
                  f" {'best':>7} {'total':>7} {'GFLOP/s':>8} {'of peak':>8} {'of ceiling':>10}")
            ratios_best, ratios_total, achieved = [], [], []
            for run in range(1, args.runs + 1):
                plain = measure("plain", arch, "float32", args.epochs, count)["rates"]
                engine = measure("engine", arch, precision, args.epochs, count, args.batchnorm)
                rates = engine["rates"]
                best = max(rates) / max(plain)  # best epoch vs best epoch
                total = sum(count / r for r in plain) / sum(count / r for r in rates)  # wall time, stalls included
                gflops = 3 * engine["flops"] * max(rates) / 1e9
                ratios_best.append(best)
                ratios_total.append(total)
                achieved.append(gflops)
                print(f"{run:>4} {fmt(plain)} {fmt(rates)} {best:6.2f}x {total:6.2f}x {gflops:8.1f}"
                      f" {gflops / peak:7.0%} {gflops / ceiling:9.0%}",
                      flush=True)
            print(f"engine / plain: best epoch min {min(ratios_best):.2f}x, median {statistics.median(ratios_best):.2f}x;"
                  f" whole fit min {min(ratios_total):.2f}x, median {statistics.median(ratios_total):.2f}x;"
                  f" engine {statistics.median(achieved):.1f} GFLOP/s (median of best epochs) ="
                  f" {statistics.median(achieved) / peak:.0%} of the {peak:.0f} GFLOP/s peak,"
                  f" {statistics.median(achieved) / ceiling:.0%} of the measured {unit} ceiling"
                  f" ({engine['flops'] / 1e6:.1f} MFLOPs per image forward)")


if __name__ == "__main__":
    main()
