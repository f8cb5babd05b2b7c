"""Provenance: wall time and memory of the study's jobs, code version, packages and machine."""

from pathlib import Path

import pandas as pd


def benchmark_table(files, root="results/benchmarks"):
    """Wall time and peak memory of the study's jobs, from Snakemake's benchmark `files` (those that
    exist: a job that never ran has none), named by their path under `root`."""
    rows = []
    for path in map(Path, files):
        if not path.exists():
            continue
        record = pd.read_csv(path, sep="\t").iloc[-1]
        job = path.relative_to(root).with_suffix("")
        rows.append({"stage": job.parts[0], "job": "/".join(job.parts[1:]) or job.parts[0],
                     "wall_seconds": record["s"], "max_rss_mb": record.get("max_rss")})
    return pd.DataFrame(rows)


def provenance(workflow_dir="."):
    """Where these numbers come from: code version, packages, machine, date."""
    import datetime
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from ..base.vcs import git_commit

    commit = git_commit(workflow_dir)
    packages = {}
    for name in ("convbench", "tensorflow", "keras", "numpy", "scikit-learn", "pandas", "matplotlib", "snakemake",
                 "papermill", "nbconvert"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "git commit": commit or "not a git checkout",
        "report built": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        **packages,
    }
