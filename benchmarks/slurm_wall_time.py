"""Wall time of the tiny study through profiles/slurm on the one-node test cluster (needs root and
Debian's munge, slurmctld, slurmd, slurm-client; tests/slurm/cluster.sh brings the cluster up).

    python benchmarks/slurm_wall_time.py [--variants grouped ungrouped]

`grouped`: train and evaluate (with the figures) of one experiment in one sbatch job; `ungrouped`: each its
own sbatch job. --init-seconds tries other first-status-check delays than the profile's. Each run
starts from a fresh copy of the workflow.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
HARNESS = PROJECT / "tests" / "slurm" / "cluster.sh"
TINY = ["training={epochs: 3}", "render={feature_map_images: 2}", "resources={gpu: 1}"]
UNGROUPED = ["--groups", "train_model=train_model", "evaluate_model=evaluate_model"]


def run_study(env, extra):
    workdir = Path(tempfile.mkdtemp(prefix="slurm-study-"))
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(PROJECT / name, workdir / name)
    for name in ("workflow", "envs", "profiles"):
        shutil.copytree(PROJECT / name, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", *extra, "--config", *TINY],
                            cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(result.stdout[-3000:] + result.stderr[-3000:])
    submissions = result.stdout.count("has been submitted with SLURM jobid") + result.stderr.count(
        "has been submitted with SLURM jobid")
    shutil.rmtree(workdir)
    return seconds, submissions


@contextmanager
def one_node_cluster():
    """The one-node test cluster for the time of the block; yields the environment that reaches it."""
    work = Path(tempfile.mkdtemp(prefix="slurm-cluster-"))
    subprocess.run(["bash", HARNESS, "start", work], check=True, capture_output=True, timeout=120)
    try:
        yield {**os.environ, "SLURM_CONF": str(work / "slurm.conf")}
    finally:
        subprocess.run(["bash", HARNESS, "stop", work], capture_output=True, timeout=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["ungrouped", "grouped"])
    parser.add_argument("--init-seconds", nargs="+", type=int, default=[None],
                        help="slurm-init-seconds-before-status-checks to try (default: the profile's)")
    args = parser.parse_args()
    with one_node_cluster() as env:
        print(f"{'profile':>10} {'first status check (s)':>23} {'sbatch jobs':>12} {'wall (s)':>9}")
        for init in args.init_seconds:
            timing = ["--slurm-init-seconds-before-status-checks", str(init)] if init else []
            for variant in args.variants:
                seconds, submissions = run_study(env, (UNGROUPED if variant == "ungrouped" else []) + timing)
                print(f"{variant:>10} {init or 'profile':>23} {submissions:>12} {seconds:>9.0f}")


if __name__ == "__main__":
    main()
