"""The project's lock (requirements.lock): what every install and every envs/*.yaml resolves to.

`uv pip compile` writes it from pyproject.toml (the command is in its header; `python envs/lock.py`
runs it). Here it is only read: the versions it locks for this Python and platform, its digest for
provenance, and how the running environment differs from it ("drift").
"""

import hashlib
import re
import sys
from pathlib import Path

# workflow/convbench/base/lock.py -> the project folder, beside Snakefile and pyproject.toml
LOCK_FILE = Path(__file__).resolve().parents[3] / "requirements.lock"

# A lock line `name==version ; marker \` (groups: name, version, marker); envs/lock.py reads the lock with it too
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)(?:\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def normalized(name):
    """A distribution's name as PEP 503 compares them (`SQLAlchemy`, `sqlalchemy` and `sqlalchemy_` alike)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(path=LOCK_FILE, environment=None):
    """{name: version} of every package the lock installs here: its environment markers evaluated for
    this Python and platform, or for `environment` (a dict of marker variables, e.g. {"sys_platform": "darwin"})."""
    from packaging.markers import Marker

    versions = {}
    for line in Path(path).read_text().splitlines():
        match = PIN.match(line)
        if not match:
            continue
        name, pinned, marker = match.groups()
        if marker is None or Marker(marker).evaluate(environment):
            versions[normalized(name)] = pinned
    return versions


def lock_digest(path=LOCK_FILE):
    """SHA-256 of the lock file: which lock, exactly, a run was checked against."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def installed_versions():
    """{name: version} of every distribution installed in this interpreter's environment."""
    from importlib.metadata import distributions

    return {normalized(dist.metadata["Name"]): dist.version for dist in distributions() if dist.metadata["Name"]}


def drift(path=LOCK_FILE, installed=None):
    """[(name, locked, installed)] for each locked package installed here at another version, sorted.

    A locked package that is absent is not drift: a stage's env (envs/*.yaml) holds only what it needs. Without
    the lock (the workflow copied without it) there is nothing to differ from: lock_facts says it is not found."""
    if not Path(path).exists():
        return []
    installed = installed_versions() if installed is None else installed
    locked = locked_versions(path)
    return sorted((name, version, installed[name]) for name, version in locked.items()
                  if name in installed and installed[name] != version)


def missing(path=LOCK_FILE, installed=None):
    """Locked packages not installed here (an install from the whole lock has none)."""
    installed = installed_versions() if installed is None else installed
    return sorted(set(locked_versions(path)) - set(installed))


def describe_drift(differences):
    """One line: `sqlalchemy 2.0.58 locked, 2.0.59 installed; ...`."""
    return "; ".join(f"{name} {locked} locked, {installed} installed" for name, locked, installed in differences)


def lock_facts(path=LOCK_FILE):
    """What a metadata file records of the lock: its file, digest and this environment's drift from it."""
    path = Path(path)
    if not path.exists():
        return {"lock": f"{path.name} not found (convbench installed outside its project folder)"}
    return {"lock": path.name, "lock_sha256": lock_digest(path),
            "lock_drift": [list(difference) for difference in drift(path)]}


def main(argv=None):
    """`python -m convbench.base.lock [--exact]`: compare this environment with the lock. Exit 1 on any
    drift; with --exact also when a locked package is missing (an install from the whole lock)."""
    exact = "--exact" in (argv if argv is not None else sys.argv[1:])
    differences = drift()
    absent = missing() if exact else []
    locked = locked_versions()
    if differences:
        print(f"differs from {LOCK_FILE.name}: {describe_drift(differences)}")
    if absent:
        print(f"locked but not installed: {', '.join(absent)}")
    if differences or absent:
        return 1
    print(f"installed packages equal {LOCK_FILE.name} for all {len(locked) - len(missing())} locked packages installed "
          f"({len(locked)} locked for this Python and platform; sha256 {lock_digest()[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
