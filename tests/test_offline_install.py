"""Clusters without network: a wheelhouse built from the lock installs the project and every env with
`--no-index`, and the default study runs, all inside a network namespace that has no network.

The README's route (Environments): `python envs/lock.py wheelhouse DIR` where there is network, then
pip's `--no-index --find-links DIR` with the lock's hashes. The wheelhouse also offers a newer release
of a locked package, as a local index may: the install must still take the locked version.
"""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import PROJECT, copy_workflow

from convbench.base.lock import LOCK_FILE, locked_versions

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"),
                                 reason="needs root, unshare and ip to run without network")]

NEWER = "zipp"  # a small locked package of which the wheelhouse offers a higher version too


def offline(command, cwd, env=None):
    """`command` (a shell line) in a new network namespace: loopback only (Jupyter's kernel talks over it)."""
    return subprocess.run(["unshare", "--net", "bash", "-c", f"ip link set lo up && {command}"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1200)


def fake_wheel(folder, name, version):
    """A valid pure-Python wheel of `name` at `version` (what a local index offering a newer release holds)."""
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", "")
        wheel.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist}/RECORD", "")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheelhouse")
    result = subprocess.run([sys.executable, str(PROJECT / "envs" / "lock.py"), "wheelhouse", str(folder), "-q"],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fake_wheel(folder, NEWER, "99.0.0")
    return folder


@pytest.fixture(scope="module")
def offline_project(tmp_path_factory, wheelhouse):
    """A clone's files installed as the README's offline route says, with no network at all."""
    project = copy_workflow(tmp_path_factory.mktemp("project"))
    for name in ("pyproject.toml", "README.md", "requirements.lock"):
        shutil.copy(PROJECT / name, project / name)
    # README, Environments, "without network" (verbatim but for the folder names)
    install = (f"python3 -m venv .venv && . .venv/bin/activate && pip install --no-index --find-links {wheelhouse} "
               f"--require-hashes -r requirements.lock && pip install --no-index --find-links {wheelhouse} --no-deps -e .")
    environment = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    environment["PATH"] = os.pathsep.join(part for part in environment["PATH"].split(os.pathsep)
                                          if part != str(os.path.dirname(sys.executable)))
    result = offline(install, project, environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project, environment


def test_offline_install_equals_the_lock_despite_a_newer_release_beside_it(offline_project):
    project, environment = offline_project
    result = offline(". .venv/bin/activate && python -m convbench.base.lock --exact", project, environment)
    assert result.returncode == 0, result.stdout + result.stderr
    result = offline(f". .venv/bin/activate && python -c 'import importlib.metadata as m; print(m.version(\"{NEWER}\"))'",
                     project, environment)
    assert result.stdout.strip() == locked_versions(LOCK_FILE)[NEWER] != "99.0.0"


def test_the_default_study_runs_offline(offline_project):
    project, environment = offline_project
    result = offline(". .venv/bin/activate && snakemake --cores 2", project, environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (project / "results" / "report.html").stat().st_size > 100_000
    assert "differ from requirements.lock" not in result.stderr


@pytest.mark.parametrize("env_file", sorted((PROJECT / "envs").glob("*.yaml")), ids=lambda path: path.name)
def test_each_env_resolves_from_the_wheelhouse_alone(offline_project, wheelhouse, env_file, tmp_path):
    """What conda's pip step runs for an env (`pip install -U -r <its pip list>`), with PIP_NO_INDEX and
    PIP_FIND_LINKS set as the README says: every file it needs is in the wheelhouse."""
    import yaml

    project, environment = offline_project
    pins = next(item["pip"] for item in yaml.safe_load(env_file.read_text())["dependencies"] if isinstance(item, dict))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(pins) + "\n")
    result = offline(f". .venv/bin/activate && pip install --dry-run --ignore-installed -U -r {requirements}", project,
                     {**environment, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Would install" in result.stdout
