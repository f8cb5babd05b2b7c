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
        **lock_provenance(),
        "report built": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        **packages,
    }


def lock_provenance():
    """The lock this report was checked against, and how the report job's own packages differ from it."""
    from ..base.lock import describe_drift, lock_facts

    facts = lock_facts()
    if "lock_sha256" not in facts:
        return {"lock": facts["lock"]}
    return {"lock": f"{facts['lock']} (sha256 {facts['lock_sha256']})",
            "packages differing from the lock (report job)": describe_drift(facts["lock_drift"]) or "none"}


def lock_drift_line(summary, own_drift=None):
    """One line for the report's first screen when any number was made with packages other than the
    lock's (training jobs' records, then the report job's own: `own_drift`, measured here when None), else None."""
    from ..base.lock import describe_drift, drift

    parts = []
    if "lock_drift" in summary:
        trained = sorted(set(summary["lock_drift"].dropna()) - {""})
        if trained:
            parts.append(f"training jobs had {'; '.join(trained)}")
    if "lock_sha256" in summary and summary["lock_sha256"].isna().any():
        parts.append(f"{int(summary['lock_sha256'].isna().sum())} experiment(s) recorded no lock (trained by an earlier release)")
    own = describe_drift(drift() if own_drift is None else own_drift)
    if own:
        parts.append(f"the report job has {own}")
    if not parts:
        return None
    return "**Packages differ from requirements.lock**: " + "; ".join(parts) + " (Provenance below; README, Environments)."
