"""The lock and the per-rule envs: refresh, upgrade, check the newest releases, build a wheelhouse.

    python envs/lock.py sync         # after editing pyproject.toml: re-lock, keeping every version that still fits
    python envs/lock.py upgrade      # newest releases inside pyproject's ranges; then the suite in a fresh venv
    python envs/lock.py check        # the same in a scratch folder: reports, changes nothing
    python envs/lock.py wheelhouse DIR [pip download options]   # every locked file, for installs with --no-index

The lock (requirements.lock) is written by `uv pip compile`, with the command in its header; this tool
only runs that command and then writes each envs/*.yaml's locked dependencies: the env's own packages
(above the marker line) and, below it, everything they need at the lock's versions, read from the
lock's `# via` annotations. `tests/test_envs.py` holds both files to each other.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
LOCK = PROJECT / "requirements.lock"
ENVS = PROJECT / "envs"
# conda-forge's python=3.11 is its newest 3.11 release; markers that split 3.11 releases are read for it
PYTHON_311 = "3.11.14"
PLATFORMS = ("linux", "darwin")  # pyproject's [tool.uv] environments
MARKER = "      # locked dependencies of the above (requirements.lock; written by `python envs/lock.py`)"
sys.path.insert(0, str(PROJECT / "workflow"))

from convbench.base.lock import PIN, locked_versions, normalized  # noqa: E402


# ---------------------------------------------------------------- reading the lock


def lock_entries(lock=LOCK):
    """{name: (version, marker or None, [names it is needed by])}, from the lock's pins and `# via` lines."""
    entries, current, in_via = {}, None, False
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            name, version, marker = match.groups()
            current, in_via = normalized(name), False
            if current in entries and env_marker(marker) is False:  # a second version, for other Pythons
                current = None
                continue
            entries[current] = (version, marker, [])
        elif current and line.strip().startswith("# via"):
            rest = line.strip()[len("# via"):].strip()
            in_via = not rest
            if rest:
                entries[current][2].append(normalized(rest.split()[0]))
        elif current and in_via and line.strip().startswith("#   "):
            entries[current][2].append(normalized(line.strip()[1:].split()[0]))
    return entries


def dependency_closure(names, entries):
    """The names and everything they need, transitively, by the lock's `# via` annotations (a package
    needed through another's extra counts too: a few packages more, never one less)."""
    needs = {}
    for name, (_, _, needed_by) in entries.items():
        for parent in needed_by:
            needs.setdefault(parent, set()).add(name)
    closure, pending = set(), [normalized(name) for name in names]
    while pending:
        name = pending.pop()
        if name not in closure:
            closure.add(name)
            pending.extend(needs.get(name, ()))
    return closure


def env_marker(marker):
    """What an env (CPython 3.11, as its `python=3.11`) needs of a lock marker: None where the package is
    installed on every platform the lock covers, a `sys_platform` marker where on one only, False where on none
    (a PyPy-only package)."""
    from packaging.markers import Marker

    if marker is None:
        return None
    cpython = {"python_version": "3.11", "python_full_version": PYTHON_311, "implementation_name": "cpython",
               "platform_python_implementation": "CPython"}
    platforms = [name for name in PLATFORMS if Marker(marker).evaluate({**cpython, "sys_platform": name})]
    if len(platforms) == len(PLATFORMS):
        return None
    return " or ".join(f"sys_platform == '{name}'" for name in platforms) or False


# ---------------------------------------------------------------- the envs


def env_lines(path):
    """(head, own pins): the env file up to its locked block, and the names of the env's own packages."""
    lines = path.read_text().splitlines()
    head = lines[:lines.index(MARKER)] if MARKER in lines else lines
    own = [re.split(r"[=\[]", line.split("- ", 1)[1])[0].strip() for line in head
           if re.match(r"^\s+- [A-Za-z0-9]", line) and "==" in line]
    return head, own


def env_text(path, entries):
    """The env file with its own packages re-pinned to the lock and its locked dependencies below the marker."""
    head, own = env_lines(path)
    pinned = []
    for line in head:
        match = re.match(r"^(\s+- )([A-Za-z0-9][A-Za-z0-9._\-]*)(\[[^\]]*\])?==([^\s#]+)(.*)$", line)
        if match and normalized(match.group(2)) in entries:
            indent, name, extras, _, rest = match.groups()
            line = f"{indent}{name}{extras or ''}=={entries[normalized(name)][0]}{rest}"
        pinned.append(line)
    own_names = {normalized(name) for name in own}
    below = []
    for name in sorted(dependency_closure(own, entries) - own_names):
        version, marker, _ = entries[name]
        marker = env_marker(marker)
        if marker is not False:
            below.append(f"      - {name}=={version}" + (f" ; {marker}" if marker else ""))
    return "\n".join(pinned + [MARKER] + below) + "\n"


def write_env(path, entries):
    text = env_text(path, entries)
    if text != path.read_text():
        path.write_text(text)
        return True
    return False


def write_envs(lock=LOCK):
    entries = lock_entries(lock)
    return [path.name for path in sorted(ENVS.glob("*.yaml")) if write_env(path, entries)]


# ---------------------------------------------------------------- locking


def uv():
    from uv import find_uv_bin  # the test extra installs uv

    return find_uv_bin()


def compile_command(lock=LOCK):
    """The `uv pip compile ...` command in the lock's header, so it is written down once."""
    for line in LOCK.read_text().splitlines()[:3]:
        if "uv pip compile" in line:
            words = shlex.split(line.lstrip("# ").strip())
            words[words.index("-o") + 1] = LOCK.name if lock == LOCK else str(lock)
            return [uv(), *words[1:]]
    sys.exit(f"{LOCK.name} has no `uv pip compile` command in its header")


def relock(lock, upgrade):
    """Run the lock's own command (from the project folder, as its header reads)."""
    command = compile_command(lock) + (["--upgrade"] if upgrade else [])
    subprocess.run(command, cwd=PROJECT, check=True)


def moved(before, after):
    """Renovate-style lines: `name  old → new`, then added and removed packages."""
    lines = [f"  {name:28} {before[name]} → {after[name]}" for name in sorted(before.keys() & after.keys())
             if before[name] != after[name]]
    lines += [f"  {name:28} (new) {after[name]}" for name in sorted(after.keys() - before.keys())]
    lines += [f"  {name:28} {before[name]} (removed)" for name in sorted(before.keys() - after.keys())]
    return lines


def run_suite(lock, pytest_args, venv):
    """A fresh venv installed from `lock` as the README installs, then the README's test command."""
    shutil.rmtree(venv, ignore_errors=True)
    python = Path(venv) / "bin" / "python"
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "-q", "--require-hashes", "-r", str(lock)],
             [str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(PROJECT)],
             [str(python), "-m", "pytest", *pytest_args]]
    environment = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    environment["PATH"] = f"{python.parent}{os.pathsep}{environment['PATH']}"
    for step in steps:
        result = subprocess.run(step, cwd=PROJECT, env=environment)
        if result.returncode:
            return result.returncode
    return 0


def report(title, lines, suite):
    print(f"\n{title}: {len(lines)} package(s) moved" + (":" if lines else ""))
    print("\n".join(lines))
    if suite is not None:
        print(f"suite: {'passed' if suite == 0 else f'FAILED (exit {suite})'}")


def upgrade(args, check):
    before = locked_versions(LOCK)
    scratch = Path(tempfile.mkdtemp(prefix="convbench-lock-"))
    lock = scratch / LOCK.name if check else LOCK
    if check:
        shutil.copy(LOCK, lock)
    relock(lock, upgrade=True)
    if not check:
        write_envs(lock)
    lines = moved(before, locked_versions(lock))
    suite = None if args.no_tests else run_suite(lock, args.pytest_args, scratch / "venv")
    title = "newest releases inside pyproject's ranges (nothing written)" if check else f"{LOCK.name} upgraded"
    report(title, lines, suite)
    shutil.rmtree(scratch, ignore_errors=True)
    return suite or 0


def wheelhouse(args):
    """Every file the lock installs on the target (default: this machine), hash-checked, into DIR."""
    command = [sys.executable, "-m", "pip", "download", "--require-hashes", "--no-deps", "-r", str(LOCK),
               "-d", str(args.directory), *args.pip_args]
    return subprocess.run(command).returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sync", help="re-lock after editing pyproject.toml and re-pin the envs")
    for name in ("upgrade", "check"):
        command = commands.add_parser(name, help=f"{name} to the newest releases inside pyproject's ranges")
        command.add_argument("--no-tests", action="store_true", help="do not install and run the suite")
        command.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    house = commands.add_parser("wheelhouse", help="download every locked file into DIR")
    house.add_argument("directory", type=Path)
    house.add_argument("pip_args", nargs=argparse.REMAINDER, help="passed to pip download (e.g. --platform ...)")
    args = parser.parse_args()
    if args.command == "sync":
        relock(LOCK, upgrade=False)
        changed = write_envs()
        print(f"{LOCK.name} written; envs re-pinned: {', '.join(changed) or 'none changed'}")
        return 0
    if args.command == "wheelhouse":
        return wheelhouse(args)
    return upgrade(args, check=args.command == "check")


if __name__ == "__main__":
    sys.exit(main())
