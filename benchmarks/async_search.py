"""What `search.asynchronous: true` saves: the shipped tuned comparison's searches run synchronously and
asynchronously, side by side, on this commit.

    python benchmarks/async_search.py [--architectures simple_cnn bn_cnn lenet5] [--cores 2] [--train-threads N]
                                      [--repeats 1] [--only synchronous|asynchronous]

Each run copies the tracked files to a fresh folder and runs Snakemake there on
studies/tuned-comparison.yaml (27 TPE trials per architecture, batch 3, halving 1 → 3 → 9 epochs), asking for
every search's search.json only: the confirmation and the report that follow are the same jobs either way.
`precision: float32` is forced so both do the same arithmetic. Printed per mode: the wall time; the training
jobs' busy share of the cores (their summed wall time × threads ÷ (wall × cores)); the trial-epochs each search
spent (the synchronous plan's budget is the cap of both); the chosen recipe's validation accuracy.
`--train-threads 1` runs two trials at once on 2 cores (the study's default, 2 threads, runs one at a time).
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "workflow"))
sys.path.insert(0, str(PROJECT / "benchmarks"))

from convbench.base.runtime import cpu_model  # noqa: E402
from job_overhead import FLOAT32, checkout  # noqa: E402

MODES = {"synchronous": [], "asynchronous": ["search={asynchronous: true}"]}


def run_search(architectures, mode, cores, train_threads=None):
    with tempfile.TemporaryDirectory(prefix="async-search-") as tmp:
        workdir = Path(tmp)
        label = checkout("HEAD", workdir)
        targets = [f"results/search/digits/{arch}/search.json" for arch in architectures]
        # --config merges into the study file's `search` section (Snakemake updates nested dicts)
        command = [sys.executable, "-m", "snakemake", "--cores", str(cores), *targets, "--configfile",
                   "studies/tuned-comparison.yaml", "--config", f"architectures=[{', '.join(architectures)}]",
                   FLOAT32, *MODES[mode],
                   *([f"resources={{train_threads: {train_threads}}}"] if train_threads else [])]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=workdir, capture_output=True, text=True,
                                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        wall = time.perf_counter() - start
        if result.returncode:
            raise SystemExit(f"{mode} failed:\n{result.stderr[-4000:]}")
        records = {arch: json.loads((workdir / target).read_text()) for arch, target in zip(architectures, targets)}
        if (mode == "asynchronous") != all(record["plan"].get("asynchronous", False) for record in records.values()):
            raise SystemExit(f"the {mode} run's records say otherwise: the --config override did not apply")
        busy = 0.0  # core-seconds of training jobs: each job's wall time × the threads its train_meta.json records
        for tsv in (workdir / "results/benchmarks/train").rglob("*.tsv"):
            meta = workdir / "results/experiments" / tsv.relative_to(workdir / "results/benchmarks/train").with_suffix("")
            with tsv.open() as handle:
                seconds = float(next(csv.DictReader(handle, delimiter="\t"))["s"])
            busy += seconds * json.loads((meta / "train_meta.json").read_text())["threads"]
        return {"commit": label, "wall": wall, "busy": busy / (wall * cores),
                "spent": {arch: record["epochs_spent"] for arch, record in records.items()},
                "chosen": {arch: record["chosen"]["validation_accuracy"] for arch, record in records.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architectures", nargs="+", default=["simple_cnn", "bn_cnn", "lenet5"])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--train-threads", type=int, help="threads per trial (default: the study's)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each mode, alternating; medians shown")
    parser.add_argument("--only", choices=list(MODES), help="run one mode and print its wall time only")
    args = parser.parse_args()
    if args.only:
        run = run_search(args.architectures, args.only, args.cores, args.train_threads)
        print(f"{args.only}, {', '.join(args.architectures)}, {args.train_threads or 2} threads per trial, "
              f"{args.cores} cores of {cpu_model()}, {run['commit']}: wall {run['wall']:.1f} s, training jobs' share "
              f"of the cores {run['busy']:.0%}, trial-epochs {run['spent']}")
        return
    runs = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            runs[mode].append(run_search(args.architectures, mode, args.cores, args.train_threads))
            print(f"{mode}: {runs[mode][-1]['wall']:.1f} s", file=sys.stderr)
    print(f"\n### searches of {', '.join(args.architectures)} on digits (studies/tuned-comparison.yaml), "
          f"{runs['synchronous'][0]['commit']}, {args.cores} cores of {cpu_model()}, "
          f"{args.train_threads or 2} threads per trial, median of {args.repeats}\n")
    print("| | synchronous | asynchronous | async / sync |\n|---|---|---|---|")
    walls = {mode: statistics.median(run["wall"] for run in runs[mode]) for mode in MODES}
    print(f"| wall (s) | {walls['synchronous']:.1f} | {walls['asynchronous']:.1f} | "
          f"{walls['asynchronous'] / walls['synchronous']:.2f}× |")
    busy = {mode: statistics.median(run["busy"] for run in runs[mode]) for mode in MODES}
    print(f"| training jobs' share of the cores | {busy['synchronous']:.0%} | {busy['asynchronous']:.0%} | |")
    for arch in args.architectures:
        spent = [runs[mode][0]["spent"][arch] for mode in MODES]
        chosen = [runs[mode][0]["chosen"][arch] for mode in MODES]
        print(f"| {arch}: trial-epochs spent (first run) | {spent[0]} | {spent[1]} | |")
        print(f"| {arch}: chosen validation accuracy (first run) | {chosen[0]:.4f} | {chosen[1]:.4f} | |")


if __name__ == "__main__":
    main()
