"""Every rule names a pinned conda env that exists, its pins are requirements.lock's, and it holds what its stage imports."""

import re
import subprocess
import sys
import package
import pytest
import yaml
from conftest import PROJECT

from convbench.base.lock import LOCK_FILE, locked_versions, normalized

RULE_FILES = sorted((PROJECT / "workflow" / "rules").glob("*.smk"))
ENV_FILES = sorted((PROJECT / "envs").glob("*.yaml"))


def rules_with_envs():
    for path in RULE_FILES:
        text = path.read_text()
        for rule, body in re.findall(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n|\n)+)", text, flags=re.M):
            env = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", body)
            yield rule, (path.parent / env.group(1)).resolve() if env else None


@pytest.mark.parametrize("rule, env", list(rules_with_envs()))
def test_rule_names_an_existing_env(rule, env):
    assert env is not None, f"rule {rule} has no conda: env"
    assert env.exists(), f"rule {rule}: {env} is missing"


def lock_tool():
    """envs/lock.py, the tool that writes the envs' locked dependencies, as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("envs_lock", PROJECT / "envs" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_is_pinned_to_the_locks_versions(path):
    """The pins are requirements.lock's versions, whatever happens to be installed."""
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    locked = {**locked_versions(LOCK_FILE, {"sys_platform": "darwin"}), **locked_versions(LOCK_FILE, {"sys_platform": "linux"})}
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    for requirement in pip:
        name, pinned = re.fullmatch(r"([\w.\-\[\]]+)==([\w.]+)(?: ; .*)?", requirement).groups()
        name = normalized(name.split("[")[0])
        assert name in locked, f"{path.name}: {name} is not in requirements.lock"
        assert pinned == locked[name], f"{path.name}: {name}=={pinned}, but requirements.lock has {name}=={locked[name]}"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_lists_everything_its_packages_need_at_the_locked_versions(path):
    """An env built from its file resolves nothing itself: below its own packages it lists their whole
    closure from the lock, as `python envs/lock.py sync` writes it."""
    tool = lock_tool()
    assert tool.MARKER in path.read_text().splitlines(), f"{path.name}: run `python envs/lock.py sync`"
    assert tool.env_text(path, tool.lock_entries()) == path.read_text(), \
        f"{path.name} is not what requirements.lock makes of it: run `python envs/lock.py sync`"


def project_requirements():
    """(where, Requirement) of every dependency pyproject.toml declares, extras included (not convbench's own)."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": project["dependencies"], **{f"[{extra}]": requirements for extra, requirements
                                                          in project["optional-dependencies"].items()}}
    for where, requirements in groups.items():
        for text in requirements:
            requirement = Requirement(text)
            if requirement.name != "convbench":
                yield where, requirement


def test_lock_satisfies_every_range_in_pyproject():
    """A range edited in pyproject.toml without re-locking is caught here (offline), not at a user's install."""
    locked = locked_versions(LOCK_FILE, {"sys_platform": "linux"})
    for where, requirement in project_requirements():
        name = normalized(requirement.name)
        assert name in locked, f"pyproject {where}: {requirement.name} is not locked: run `python envs/lock.py sync`"
        assert requirement.specifier.contains(locked[name], prereleases=True), \
            f"pyproject {where}: {requirement} but requirements.lock has {locked[name]}: run `python envs/lock.py sync`"


def test_every_locked_package_has_hashes_and_the_lock_says_how_it_was_made():
    text = LOCK_FILE.read_text()
    assert "uv pip compile pyproject.toml --extra test --universal --generate-hashes -o requirements.lock" in text
    pins = re.findall(r"^([A-Za-z0-9][\w.\-]*)==\S+[^\n]*\\\n((?:\s+--hash=sha256:[0-9a-f]{64}.*\n)*)", text, flags=re.M)
    assert len(pins) == len(re.findall(r"^[A-Za-z0-9][\w.\-]*==", text, flags=re.M))
    assert all(hashes for _, hashes in pins), [name for name, hashes in pins if not hashes]


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=PROJECT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- each env holds what its stage imports

SCRIPTS = PROJECT / "workflow" / "scripts"


def rule_scripts():
    """(rule, script path, env path) of every script rule."""
    for path in RULE_FILES:
        for rule, body in re.findall(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n|\n)+)", path.read_text(), flags=re.M):
            script = re.search(r"script:\s*\n\s*\"([^\"]+)\"", body)
            env = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", body)
            if script:
                yield rule, (path.parent / script.group(1)).resolve(), (path.parent / env.group(1)).resolve()


def third_party_imports(script, extra_sources=()):
    """Top-level third-party modules a stage's script reaches, following convbench (old flat names to
    their new homes) and _bootstrap."""
    known = package.modules()
    seen, third_party = set(), set()
    pending = [(script.read_text(), None, False), *((source, None, False) for source in extra_sources)]
    while pending:
        source, module, is_package = pending.pop()
        for name in package.imported_names(source, module, is_package):
            top = name.split(".")[0]
            if top not in ("convbench", "_bootstrap"):
                if top not in sys.stdlib_module_names:
                    third_party.add(top)
                continue
            for target in ["_bootstrap"] if top == "_bootstrap" else package.resolve(name):
                path = SCRIPTS / "_bootstrap.py" if target == "_bootstrap" else known[target]
                if path not in seen:
                    seen.add(path)
                    pending.append((path.read_text(), target, path.name == "__init__.py"))
    return third_party


def installed_with(distributions):
    """Every distribution pip installs for these requirements (their dependencies, recursively)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    closure, pending = set(), [name.lower().replace("_", "-") for name in distributions]
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        try:
            requirements = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name.lower().replace("_", "-"))
    return closure


def notebook_code():
    import json

    notebook = json.loads((PROJECT / "workflow" / "notebooks" / "report.ipynb").read_text())
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


@pytest.mark.parametrize("rule, script, env", list(rule_scripts()), ids=lambda value: getattr(value, "name", value))
def test_env_holds_every_package_its_stage_imports(rule, script, env):
    """What `--sdm conda` builds must run the stage: every module the script reaches (through
    convbench, lazily imported ones included; the report notebook for build_report) is installed
    by the env's pins or their dependencies."""
    from importlib.metadata import packages_distributions

    pins = next(item["pip"] for item in yaml.safe_load(env.read_text())["dependencies"] if isinstance(item, dict))
    available = installed_with(re.split(r"[=\[]", pin)[0] for pin in pins)
    owners = packages_distributions()
    extra = notebook_code() if rule == "build_report" else ()
    missing = sorted(module for module in third_party_imports(script, extra)
                     if not {dist.lower().replace("_", "-") for dist in owners.get(module, [module])} & available)
    assert not missing, f"rule {rule}: {env.name} lacks what provides {missing}"
