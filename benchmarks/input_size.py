"""Training at a raised input_size: memory and speed of per-batch resizing vs pre-resized data.

    python benchmarks/input_size.py [--images 50000] [--size 224] [--steps 8] [--batch 32]

ResNet-50 from scratch at 224 px on a CIFAR-sized prepared set (50,000 synthetic 32x32x3 uint8
images), through convbench's own training pipeline (training.training_dataset, which resizes each
batch on the fly). Beside it, the same model fed images already resized to 224 px: only the images
the timed steps use are pre-resized (all 50,000 would need 7.5 GB as uint8, 30 GB as float32).
Each mode runs in its own process; peak RSS is the process's maximum resident set size.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "workflow"))

from convbench.base.runtime import cpu_model  # noqa: E402  (no TensorFlow import: the measured child imports it)


def run_mode(mode, images, size, steps, batch):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from convbench.base.runtime import configure_tensorflow, seed_everything

    configure_tensorflow(threads=os.cpu_count())
    seed_everything(0)
    from convbench.models.architectures import create_model
    from convbench.train.training import compile_model, training_dataset

    rng = np.random.default_rng(0)
    used = (steps + 2) * batch  # warm-up steps + timed steps
    if mode == "on_the_fly":
        pixels = rng.integers(0, 256, (images, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, images)
    else:  # only what the steps use, resized once up front (all of it would not fit)
        import tensorflow as tf

        small = rng.integers(0, 256, (used, 32, 32, 3), dtype=np.uint8)
        pixels = np.clip(np.round(tf.image.resize(tf.cast(small, tf.float32), (size, size), antialias=True).numpy()),
                         0, 255).astype(np.uint8)
        labels = rng.integers(0, 10, used)
    manifest = {"preprocessing": {"offset": [0.0] * 3, "scale": [1 / 255] * 3}}
    model = create_model("resnet50", pixels.shape[1:], 10, input_size=size)
    settings = {"optimizer": "adam", "label_smoothing": 0.0}
    compile_model(model, settings, 1e-3, "constant", steps + 2, 1)
    dataset = training_dataset(pixels, labels, manifest, num_classes=10, batch_size=batch, seed=0, first_epoch=0,
                               epochs=1, input_size=size)
    model.fit(dataset.take(2), verbose=0)  # tracing and warm-up
    start = time.perf_counter()
    model.fit(dataset.skip(2).take(steps), verbose=0)
    seconds = time.perf_counter() - start
    return {"mode": mode, "images_per_second": steps * batch / seconds,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, "data_gb": pixels.nbytes / 1e9}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.images, args.size, args.steps, args.batch)))
        return
    results = []
    for mode in ("on_the_fly", "pre_resized"):
        output = subprocess.run([sys.executable, __file__, "--mode", mode, "--images", str(args.images), "--size",
                                 str(args.size), "--steps", str(args.steps), "--batch", str(args.batch)],
                                capture_output=True, text=True, check=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    materialised = args.images * args.size * args.size * 3 / 1e9
    print(f"ResNet-50 at {args.size} px, batch {args.batch}, {args.steps} timed steps; {cpu_model()}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'mode':<14}{'images/s':>10}{'peak RSS':>11}{'image data in memory':>24}")
    for result in results:
        print(f"{result['mode']:<14}{result['images_per_second']:>10.2f}{result['peak_rss_gb']:>9.2f} GB"
              f"{result['data_gb']:>21.2f} GB")
    print(f"materialising all {args.images:,} images at {args.size} px: {materialised:.2f} GB as uint8, "
          f"{4 * materialised:.1f} GB as float32")
    print(f"on the fly / pre-resized throughput: {results[0]['images_per_second'] / results[1]['images_per_second']:.2f}x")


if __name__ == "__main__":
    main()
