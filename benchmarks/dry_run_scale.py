"""How long Snakemake takes to plan a large study (`snakemake -n`), and whether it grows linearly.

    python benchmarks/dry_run_scale.py [--workflow DIR] [--sizes 1x10 10x10 1x100] [--no-variants]

Each size VxS plans 2 datasets (digits, mnist) x all 12 registered architectures x V variants
(a learning-rate sweep, plus `default`) x S seeds in a copy of the workflow with no results, and
prints the wall time per size and per 1,000 experiments. --workflow points at another checkout
(e.g. a `git worktree` of an older commit) to measure it side by side; --no-variants leaves the
variants out of the config, for commits that predate them.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "workflow"))

from convbench.base.runtime import cpu_model  # noqa: E402
ARCHITECTURES = ["simple_cnn", "bn_cnn", "lenet5", "alexnet", "resnet20", "vgg16", "vgg19", "resnet50", "resnet101",
                 "inceptionv3", "mobilenetv2", "efficientnetb0"]


def plan(workflow, variants, seeds, use_variants):
    workdir = Path(tempfile.mkdtemp(prefix="dry-run-"))
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(workflow / name, workdir / name)
    for name in ("workflow", "envs", "profiles"):
        shutil.copytree(workflow / name, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))
    config = ["datasets=[digits, mnist]", f"architectures=[{', '.join(ARCHITECTURES)}]",
              f"seeds=[{', '.join(map(str, range(1, seeds + 1)))}]"]
    if use_variants and variants > 1:
        rates = ", ".join(f"{0.001 * 0.8 ** index:.6g}" for index in range(1, variants))
        config.append(f"sweep={{learning_rate: [{rates}]}}")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "4", "--config",
                             *config], cwd=workdir, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    seconds = time.perf_counter() - start
    shutil.rmtree(workdir)
    if result.returncode:
        raise SystemExit(result.stdout[-2000:] + result.stderr[-2000:])
    jobs = [line.split() for line in result.stdout.splitlines() if line.strip().startswith("train_model")]
    return seconds, int(jobs[0][1]) if jobs else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", type=Path, default=PROJECT)
    parser.add_argument("--sizes", nargs="+", default=["1x10", "10x10", "1x100"],
                        help="VARIANTSxSEEDS per run (default: 240, 2,400 and 2,400 experiments)")
    parser.add_argument("--no-variants", action="store_true")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.workflow, capture_output=True,
                            text=True).stdout.strip()
    print(f"workflow {args.workflow} at {commit or '?'}; CPU: {cpu_model()}, {os.cpu_count()} cores")
    print(f"{'variants':>8} {'seeds':>6} {'experiments':>12} {'planned trainings':>18} {'dry run (s)':>12} "
          f"{'s per 1,000':>12}")
    for size in args.sizes:
        variants, seeds = map(int, size.split("x"))
        experiments = 2 * len(ARCHITECTURES) * variants * seeds
        seconds, planned = plan(args.workflow, variants, seeds, not args.no_variants)
        print(f"{variants:>8} {seeds:>6} {experiments:>12,} {planned or 0:>18,} {seconds:>12.1f} "
              f"{1000 * seconds / experiments:>12.2f}")


if __name__ == "__main__":
    main()
