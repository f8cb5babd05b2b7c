"""Every rule names a pinned conda env that exists, and the pins are the versions under test."""

import re
import subprocess
import sys
from importlib.metadata import version

import pytest
import yaml

from conftest import PROJECT

RULE_FILES = sorted((PROJECT / "workflow" / "rules").glob("*.smk"))
ENV_FILES = sorted((PROJECT / "envs").glob("*.yaml"))


def rules_with_envs():
    for path in RULE_FILES:
        text = path.read_text()
        for rule, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", text, flags=re.M):
            env = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", body)
            yield rule, (path.parent / env.group(1)).resolve() if env else None


@pytest.mark.parametrize("rule, env", list(rules_with_envs()))
def test_rule_names_an_existing_env(rule, env):
    assert env is not None, f"rule {rule} has no conda: env"
    assert env.exists(), f"rule {rule}: {env} is missing"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_is_pinned_to_the_tested_versions(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    for requirement in pip:
        name, pinned = re.fullmatch(r"([\w.\-\[\]]+)==([\w.]+)", requirement).groups()
        name = name.split("[")[0]
        assert version(name) == pinned, f"{path.name}: {name}=={pinned}, but the tests run {version(name)}"


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=PROJECT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
