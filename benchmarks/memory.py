"""Declared memory against measured peaks: every job of a study, run through Snakemake.

    python benchmarks/memory.py default            # the default study (config.yaml)
    python benchmarks/memory.py folder [--images 50000] [--size 160]
    python benchmarks/memory.py transfer [--size 224]

Each job records its peak resident memory when it ends (convbench.base.memory: its process's
high-water mark plus its largest child's); this runs a study in a fresh copy of the
workflow with `snakemake --cores 2` and prints, per rule, its jobs, the mem_mb they declared and
their largest peak.
default: config.yaml as it is. folder: a generated image folder of --images images at --size px
    (JPEG, every 10th PNG; benchmarks/prepare_image_folder.py, generated once), one epoch of a small
    convnet (larger_than_memory.SMALL) reading its shards per batch. transfer: MobileNetV2 transfer
    learning at --size px (ImageNet's 224 by default) on digits, one epoch and one fine-tuning epoch, its
    weights (random, seeded, in the published file format) served by a local HTTP server like the real ones.
Prints the machine's CPU.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "workflow"))
sys.path.insert(0, str(PROJECT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from conftest import copy_workflow  # noqa: E402
from convbench.base.memory import MEMORY_DIR  # noqa: E402
from convbench.base.runtime import cpu_model  # noqa: E402


def run_study(workdir, study=None):
    """The workflow copied into `workdir`, run with `study` (a config file's content) on 2 cores."""
    copy_workflow(workdir)
    extra = []
    if study:
        (workdir / "study.yaml").write_text(yaml.safe_dump(study))
        extra = ["--configfile", "study.yaml"]
    with open(workdir / "snakemake.log", "w") as log:
        result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *extra], cwd=workdir, check=False,
                                stdout=log, stderr=subprocess.STDOUT)
    if result.returncode:
        raise SystemExit(f"the study failed: {workdir / 'snakemake.log'}")


def print_peaks(workdir, title):
    records = [json.loads(path.read_text()) for path in sorted((workdir / MEMORY_DIR).glob("*.json"))]
    rules = {}
    for record in records:
        rules.setdefault(record["rule"], []).append(record)
    print(f"\n{title}\n{'rule':<22}{'jobs':>6}{'declared mem_mb':>17}{'largest peak MB':>17}{'peak / declared':>17}")
    for rule, entries in sorted(rules.items()):
        declared = max(entry["declared_mb"] for entry in entries)
        peak = max(entry["peak_mb"] for entry in entries)
        print(f"{rule:<22}{len(entries):>6}{declared:>17,}{peak:>17,}{peak / declared:>17.2f}", flush=True)


def folder_study(args):
    from larger_than_memory import SMALL
    from prepare_image_folder import generate

    root = args.folder / f"{args.images}-{args.size}"
    generate(root, args.images, size=args.size, png_every=10)
    return {"datasets": ["large"], "architectures": ["small"],
            "custom_datasets": {"large": {"format": "image_folder", "path": str(root), "image_size": args.size,
                                          "color_mode": "rgb"}},
            "custom_architectures": {"small": SMALL}, "training": {"epochs": 1, "batch_size": 64},
            "data": {"test_fraction": 0.1, "validation_fraction": 0.05}}


def transfer_study(server, args):
    import canonical
    import keras
    from test_transfer import save_keras_applications_weights

    keras.utils.set_random_seed(11)
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(args.size, args.size, 3))
    path = Path(tempfile.mkdtemp()) / "mnv2.h5"
    save_keras_applications_weights(path, base)
    server.files["/mnv2.h5"] = path.read_bytes()
    return {"architectures": ["mnv2_tl"],
            "transfer_learning": {"mnv2_tl": {"base": "mobilenetv2", "weights": "imagenet",
                                              "weights_url": f"{server.url}/mnv2.h5",
                                              "weights_sha256": canonical.sha256_bytes(server.files["/mnv2.h5"]),
                                              "fine_tune": {"layers": 10, "epochs": 1}}},
            "architecture_options": {"mnv2_tl": {"input_size": args.size}}, "training": {"epochs": 1}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=["default", "folder", "transfer"])
    parser.add_argument("--images", type=int, default=50_000, help="folder: how many images")
    parser.add_argument("--size", type=int, help="folder: image side (160); transfer: input_size (224)")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "convbench-large-folder")
    parser.add_argument("--keep", type=Path, help="run the study in this folder and keep it")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, 2 cores")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="convbench-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.study == "default":
        run_study(workdir)
        title = "default study (config.yaml)"
    elif args.study == "folder":
        args.size = args.size or 160
        args.folder.mkdir(parents=True, exist_ok=True)
        run_study(workdir, folder_study(args))
        title = f"{args.images:,} images of {args.size} px, one epoch of a small convnet"
    else:
        import canonical

        args.size = args.size or 224
        with canonical.FileServer() as server:
            run_study(workdir, transfer_study(server, args))
        title = f"MobileNetV2 transfer learning at {args.size} px on digits, 1 + 1 fine-tuning epochs"
    print_peaks(workdir, title)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
