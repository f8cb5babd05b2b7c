"""What checking prepared data against its manifest costs a job (convbench.data.prepared): every
shard and label file is read once and hashed (SHA-256) the first time a process opens it.

    python benchmarks/verify_prepared.py [--gigabytes 2]

Writes a prepared dataset of that size (random 160x160x3 images, 256 MB shards, as prepare_dataset
writes them), then times, in a fresh reader each: reading every training image without the check
(the manifest's hashes removed), and with it; from the page cache (a job right after another).
Prints the CPU and the figures extrapolated to 15 GB.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "workflow"))

from convbench.base.runtime import cpu_model  # noqa: E402
from convbench.data.datasets import write_prepared  # noqa: E402
from convbench.data.prepared import load_prepared  # noqa: E402

SIDE = 160


def chunks(count, seed):
    generator = np.random.default_rng(seed)
    for start in range(0, count, 512):
        yield generator.integers(0, 256, (min(512, count - start), SIDE, SIDE, 3), dtype=np.uint8)


def read_all(directory, manifest):
    data = load_prepared(directory, manifest=manifest)
    start = time.perf_counter()
    for _ in data.batches("train", 1024):
        pass
    data.labels("train")
    seconds = time.perf_counter() - start
    data.close()
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=2.0)
    args = parser.parse_args()
    count = int(args.gigabytes * 2**30 // (SIDE * SIDE * 3))
    work = Path(tempfile.mkdtemp(prefix="verify-prepared-"))
    try:
        labels = np.arange(count) % 10
        manifest = {"dataset": "bench", "num_classes": 10, "input_shape": [SIDE, SIDE, 3],
                    "class_names": list("abcdefghij"), "preprocessing": {"scaling": "unit"}}
        splits = {"train": (labels, chunks(count, 0)), "val": (labels[:10], chunks(10, 1)),
                  "test": (labels[:10], chunks(10, 2))}
        write_prepared(work / "data", work / "data.json", splits, manifest)
        from convbench.base.atomic import read_json

        checked = read_json(work / "data.json")
        unchecked = {**checked, "labels_sha256": {},
                     "shards": {split: [{k: v for k, v in shard.items() if k != "sha256"} for shard in shards]
                                for split, shards in checked["shards"].items()}}
        read_all(work / "data", unchecked)  # into the page cache
        plain = min(read_all(work / "data", unchecked) for _ in range(3))
        verified = min(read_all(work / "data", checked) for _ in range(3))
        gigabytes = count * SIDE * SIDE * 3 / 2**30
        print(f"CPU: {cpu_model()}; {gigabytes:.2f} GB of training images in {len(checked['shards']['train'])} shards")
        print(f"{'read':>26} {'seconds':>8} {'GB/s':>6} {'15 GB (s)':>10}")
        for name, seconds in (("without the check", plain), ("with the check (SHA-256)", verified)):
            print(f"{name:>26} {seconds:>8.2f} {gigabytes / seconds:>6.2f} {15 * seconds / gigabytes:>10.1f}")
        added = verified - plain
        print(f"the check adds {added:.2f} s ({15 * added / gigabytes:.1f} s for 15 GB) per job")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
