"""A study that fails on the cluster, through profiles/slurm on the one-node test cluster (needs root and
Debian's munge, slurmctld, slurmd, slurm-client; tests/slurm/cluster.sh brings the cluster up):
a test folder missing a class (bad data) and an experiment sbatch refuses (a partition the cluster
does not have), with `--keep-going`. Runs this checkout and an earlier commit side by side.

    python benchmarks/slurm_failing_study.py [--before 8d75f74]

Prints, per workflow: sbatch jobs submitted, retries Snakemake made, the failed-job lines at the end,
and the wall time until Snakemake exited.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "tests"))
from slurm_wall_time import one_node_cluster  # noqa: E402  (beside this script)
WORKFLOW = ("Snakefile", "config.yaml", "workflow", "envs", "profiles")
STUDY = """datasets: [digits, split_folders]
architectures: [simple_cnn]
training: {epochs: 1}
custom_datasets:
  split_folders: {format: image_folder, path: train, test_path: test, image_size: 20}
"""


def workflow_copy(commit):
    workdir = Path(tempfile.mkdtemp(prefix="slurm-failing-"))
    if commit:
        archive = subprocess.run(["git", "archive", commit, *WORKFLOW], cwd=PROJECT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", workdir], input=archive.stdout, check=True)
    else:
        for name in WORKFLOW:
            (shutil.copytree if (PROJECT / name).is_dir() else shutil.copy)(PROJECT / name, workdir / name)
    return workdir


def run_failing_study(env, commit):
    import canonical

    workdir = workflow_copy(commit)
    canonical.image_folder(workdir / "train", per_class=12, size=20)
    canonical.image_folder(workdir / "test", classes=("cats", "dogs"), per_class=4, size=20, seed=3)
    (workdir / "study.yaml").write_text(STUDY)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/slurm",
                             "--configfile", "study.yaml", "--keep-going",
                             "--set-resources", "train_model:slurm_partition=gpu"],
                            cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    output = result.stdout + result.stderr
    shutil.rmtree(workdir)
    summary = output[output.find("job(s) failed:"):] if "job(s) failed:" in output else ""
    return {"submitted": output.count("has been submitted with SLURM jobid"),
            "retries": output.count("Trying to restart job"),
            "lines": re.findall(r"^  (\S+ \S+): ", summary, flags=re.M), "seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="8d75f74", help="the earlier commit to compare with")
    args = parser.parse_args()
    with one_node_cluster() as env:
        print(f"{'workflow':>12} {'sbatch jobs':>11} {'retries':>7} {'wall (s)':>8}  failed-job lines")
        for name, commit in ((args.before, args.before), ("this", None)):
            run = run_failing_study(env, commit)
            print(f"{name:>12} {run['submitted']:>11} {run['retries']:>7} {run['seconds']:>8.0f}  "
                  f"{'; '.join(run['lines']) or '(none)'}")


if __name__ == "__main__":
    main()
