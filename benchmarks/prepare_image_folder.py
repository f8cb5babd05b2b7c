"""Peak memory of preparing a large image folder: convbench's streaming prepare vs the naive way.

Generates N images of 64x64 RGB (PNG and JPEG, 10 classes) once, then prepares them twice, each
in its own process so that its peak resident memory (ru_maxrss) is measured alone:

  convbench  prepare_dataset: lists the files, splits by label, decodes 512 images at a time and
             writes them to the split's .npy shards (convbench.data.prepared), then reads the training
             shards back a chunk at a time for the scaling statistics.
  baseline   what a first script does: decode every image into a Python list, np.stack,
             index the splits, np.savez_compressed.

    python benchmarks/prepare_image_folder.py [--images 100000] [--folder /tmp/convbench-folder]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
CLASSES = [f"class{i}" for i in range(10)]
SIZE = 64


def write_images(args):
    root, start, stop, size, png_every = args
    from PIL import Image

    rng = np.random.default_rng(start)
    for i in range(start, stop):
        label = i % len(CLASSES)
        image = rng.integers(0, 40, (size, size, 3), dtype=np.uint8) + np.linspace(0, 150, size, dtype=np.uint8)[:, None, None]
        band = 6 * size // 64  # a bright band per class: 6 rows at 64 px
        image[label * band : label * band + band] = 255
        suffix = "png" if i % png_every == 1 else "jpg"
        Image.fromarray(image).save(Path(root) / CLASSES[label] / f"{i:06d}.{suffix}")


def generate(root, count, size=SIZE, png_every=2):
    """`count` images of size x size RGB in 10 class folders, every png_every-th a PNG, the rest JPEG (once)."""
    marker = root / f".complete-{count}"
    if marker.exists():
        return
    for name in CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
    chunks = [(str(root), start, min(start + 5000, count), size, png_every) for start in range(0, count, 5000)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write_images, chunks))
    marker.touch()


CONVBENCH = """
import sys
sys.path.insert(0, {package!r})
from convbench.data.catalog import resolve_datasets
from convbench.data.datasets import prepare_dataset
study = resolve_datasets({{"bench": {{"format": "image_folder", "path": {root!r}, "image_size": 64, "color_mode": "rgb"}}}})
prepare_dataset(study["bench"], [{root!r}], "64x64x3", {out!r} + "/c", {out!r} + "/c.json",
                split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="standardize")
"""

BASELINE = """
import sys
import numpy as np
from PIL import Image
sys.path.insert(0, {package!r})
from convbench.data.formats import class_folders, list_image_folder
from convbench.data.datasets import stratified_splits
classes = class_folders({root!r})
paths, labels = list_image_folder({root!r}, classes)
images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
images = np.stack(images)
train, val, test = stratified_splits(labels, None, test_fraction=0.2, validation_fraction=0.1, seed=0)
x = images.astype(np.float32) / 255  # scaled once, as the tutorials do
mean, std = x[train].mean(axis=(0, 1, 2)), x[train].std(axis=(0, 1, 2))
np.savez_compressed({out!r} + "/b.npz", x_train=images[train], x_val=images[val], x_test=images[test],
                    y_train=labels[train], y_val=labels[val], y_test=labels[test])
"""


def measure(code, log=None):
    """Wall seconds and peak RSS (MB) of `code` run in a fresh Python process (its stderr to `log`, a file)."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], stderr=log)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"benchmark process failed with status {status}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "convbench-image-folder")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    root = args.folder / str(args.images)
    started = time.perf_counter()
    generate(root, args.images)
    print(f"{args.images} images of {SIZE}x{SIZE} RGB (PNG/JPEG) in {root} ({time.perf_counter() - started:.0f} s to generate)")
    decoded_mb = args.images * SIZE * SIZE * 3 / 2**20
    print(f"decoded pixels: {decoded_mb:.0f} MB as uint8\n")

    runs = [("convbench prepare_dataset", CONVBENCH)] + ([] if args.skip_baseline else [("baseline: list + np.stack", BASELINE)])
    print(f"{'method':<28}{'wall s':>10}{'peak RSS MB':>14}")
    with tempfile.TemporaryDirectory() as out:
        for name, template in runs:
            seconds, rss = measure(template.format(package=str(PROJECT / "workflow"), root=str(root), out=out))
            print(f"{name:<28}{seconds:>10.1f}{rss:>14.0f}", flush=True)


if __name__ == "__main__":
    main()
