"""A study made by an earlier release stays valid after `git pull`: nothing is trained, prepared or
evaluated again. Snakemake reruns a job when its script is newer than its outputs, or its params, code
or env changed; git rewrites exactly the files whose content changed, with the time of the pull."""

import filecmp
import os
import shutil
import subprocess

import pytest
from conftest import PROJECT, copy_workflow, planned_jobs, run_snakemake

pytestmark = pytest.mark.integration

# The last commit before the package was grouped by stage (convbench/<stage>/, issue #29).
BEFORE_STAGE_PACKAGES = "5ea696fa5fa0c2deb7ffb0d7368f3f9b88a060a6"
WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "envs", "profiles")
# Jobs a pull may rerun: none that trains, prepares, fetches or evaluates.
ALLOWED_TO_RERUN = {"build_report", "all"}
SMALL = ["architectures=[simple_cnn]", "training={epochs: 1}"]  # every stage's job once, briefly


def checkout(commit, destination):
    """The workflow files as `git archive` has them at `commit` (mtime: the commit's time)."""
    archive = destination.parent / f"{commit}.tar"
    result = subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), commit, *WORKFLOW_FILES],
                            cwd=PROJECT, capture_output=True, text=True)
    if result.returncode != 0:  # CI runs on a full clone: there the commit must be found
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"git archive {commit}: {result.stderr.strip()}")
    destination.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(destination)], check=True)  # keeps the mtimes
    return destination


def pull(workdir, new_tree):
    """What `git pull` does to a work tree: a changed or new file is written (now), a removed file goes,
    an unchanged file keeps its bytes and its mtime."""
    for name in WORKFLOW_FILES:
        old, new = workdir / name, new_tree / name
        pairs = [(old, new)] if new.is_file() else [
            (old / path.relative_to(new), path) for path in new.rglob("*") if path.is_file()]
        for target, source in pairs:
            if not (target.exists() and filecmp.cmp(target, source, shallow=False)):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        if old.is_dir():
            for path in sorted(old.rglob("*"), reverse=True):
                if not (new / path.relative_to(old)).exists() and "__pycache__" not in path.parts:
                    path.unlink() if path.is_file() else path.rmdir()


def test_a_study_made_before_the_stage_packages_is_reused_as_it_is(tmp_path):
    workdir = checkout(BEFORE_STAGE_PACKAGES, tmp_path / "study")
    env = {**os.environ, "PYTHONPATH": str(workdir / "workflow")}  # the old release's package, not this one
    run_snakemake(workdir, "--cores", "2", env=env, config=SMALL)
    models = {path: path.stat().st_mtime_ns for path in workdir.glob("results/experiments/*/*/*/*/model.keras")}
    assert models

    (tmp_path / "new").mkdir()
    pull(workdir, copy_workflow(tmp_path / "new"))
    assert not (workdir / "workflow" / "convbench" / "training.py").exists()  # the new layout is in place

    planned = set(planned_jobs(run_snakemake(workdir, "--dry-run", "--cores", "2", config=SMALL)))
    assert planned <= ALLOWED_TO_RERUN, f"pulling the stage layout reruns {sorted(planned - ALLOWED_TO_RERUN)}"
    run_snakemake(workdir, "--cores", "2", config=SMALL)
    assert {path: path.stat().st_mtime_ns for path in models} == models  # not one model trained again
    assert (workdir / "results" / "report.html").stat().st_mtime > max(models.values()) / 1e9
