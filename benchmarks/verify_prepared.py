"""What checking prepared data against its manifest costs a job (convbench.data.prepared): every
shard and label file is hashed (SHA-256) when a job opens it, unless the study's verified stamp says the
file is unchanged since a job of the study hashed it (issue #43).

    python benchmarks/verify_prepared.py [--gigabytes 1 15]

Writes a prepared dataset of each size (random 160x160x3 images, 256 MB shards, as prepare_dataset
writes them), then times, in a fresh reader each, from the page cache (a job right after another):
reading every training image without the check (the manifest's hashes removed), with it and no stamps
(every job before #43), and with it once a job stamped the files; and a training job's opening check of
every split (PreparedData.check) without and with the stamps. Prints the CPU.
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


def check_all(directory, manifest):
    """A training job's opening check (every split's files), in a fresh reader."""
    data = load_prepared(directory, manifest=manifest)
    start = time.perf_counter()
    data.check()
    seconds = time.perf_counter() - start
    data.close()
    return seconds


def measure(gigabytes):
    import os

    from convbench.base.atomic import read_json
    from convbench.data.verified import VERIFIED_DIR

    count = int(gigabytes * 2**30 // (SIDE * SIDE * 3))
    work = Path(tempfile.mkdtemp(prefix="verify-prepared-"))
    here = os.getcwd()
    try:
        labels = np.arange(count) % 10
        manifest = {"dataset": "bench", "num_classes": 10, "input_shape": [SIDE, SIDE, 3],
                    "class_names": list("abcdefghij"), "preprocessing": {"scaling": "unit"}}
        splits = {"train": (labels, chunks(count, 0)), "val": (labels[:10], chunks(10, 1)),
                  "test": (labels[:10], chunks(10, 2))}
        write_prepared(work / "data", work / "data.json", splits, manifest)
        checked = read_json(work / "data.json")
        unchecked = {**checked, "labels_sha256": {},
                     "shards": {split: [{k: v for k, v in shard.items() if k != "sha256"} for shard in shards]
                                for split, shards in checked["shards"].items()}}
        study = work / "study"
        (study / ".snakemake").mkdir(parents=True)
        os.chdir(study)  # a study's working directory: its stamps live in .snakemake/
        read_all(work / "data", unchecked)  # into the page cache
        plain = min(read_all(work / "data", unchecked) for _ in range(3))

        def unstamped(run):
            shutil.rmtree(VERIFIED_DIR, ignore_errors=True)
            return run(work / "data", checked)

        hashed = min(unstamped(read_all) for _ in range(3))
        stamped = min(read_all(work / "data", checked) for _ in range(3))
        check_hashed = min(unstamped(check_all) for _ in range(3))
        check_stamped = min(check_all(work / "data", checked) for _ in range(3))
        size = count * SIDE * SIDE * 3 / 2**30
        print(f"\n{size:.2f} GB of training images in {len(checked['shards']['train'])} shards")
        print(f"{'':>38} {'seconds':>8} {'GB/s':>6}")
        for name, seconds in (("read, without the check", plain), ("read, checked, no stamps (before #43)", hashed),
                              ("read, checked, stamped", stamped)):
            print(f"{name:>38} {seconds:>8.2f} {size / seconds:>6.2f}")
        print(f"{'opening check, no stamps (before #43)':>38} {check_hashed:>8.2f}")
        print(f"{'opening check, stamped':>38} {check_stamped:>8.3f}")
        print(f"the check costs a job {hashed - plain:.2f} s before the stamp, {stamped - plain:+.2f} s with it")
    finally:
        os.chdir(here)
        shutil.rmtree(work)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, nargs="+", default=[1.0, 15.0])
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}")
    for gigabytes in args.gigabytes:
        measure(gigabytes)


if __name__ == "__main__":
    main()
