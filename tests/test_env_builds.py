"""Each envs/*.yaml, built fresh, runs its stage's scripts.

`--sdm conda` builds these files for users; conda channels are unreachable from CI, so each env is
built as a venv holding exactly its pip pins (Python from the machine, as the env's python=3.11).
A tiny study covering every script rule runs once with `--skip-script-cleanup`; the wrapper
scripts Snakemake generated are then executed again with the fresh env's Python, as Snakemake
executes them inside a conda env. Snakemake appends its own install to the script's sys.path
(it needs it to unpickle its job object); here that fallback holds only Snakemake and its own
dependencies, as a user's Snakemake-only base env does, never the test venv's TensorFlow or SciPy.

The venvs are cached in pytest's cache, keyed by the env file's content and the Python version.
"""

import ast
import hashlib
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import canonical
import pytest
import snakemake
import yaml
from conftest import copy_workflow, run_snakemake
from PIL import Image
from test_envs import installed_with, rule_scripts
from uv import find_uv_bin

pytestmark = pytest.mark.integration

ENV_FILES = sorted((Path(__file__).resolve().parent.parent / "envs").glob("*.yaml"))
# fetch_weights runs fetch_file.py in the same env as fetch_file; the tiny study fetches a
# dataset over HTTP but no ImageNet weights.
NOT_IN_THE_STUDY = {"fetch_weights"}


def pins(env_file):
    dependencies = yaml.safe_load(env_file.read_text())["dependencies"]
    return next(item["pip"] for item in dependencies if isinstance(item, dict))


def start_build(env_file, cache):
    """Start building the env's venv in the background; None when a cached build exists."""
    key = hashlib.sha256(env_file.read_bytes() + sys.version.encode()).hexdigest()[:16]
    prefix = cache / f"{env_file.stem}-{key}"
    if (prefix / "built").exists():
        return prefix, None
    shutil.rmtree(prefix, ignore_errors=True)
    # uv: a TensorFlow env in ~10 s from its cache, where pip took ~45 s of CPU per env (and competed
    # with the study on 2 cores); no bytecode compilation, as with pip's --no-compile.
    uv = find_uv_bin()
    command = (f"{uv} venv -q --python {sys.executable} {prefix} && {uv} pip install -q --python {prefix}/bin/python "
               + " ".join(shlex.quote(pin) for pin in pins(env_file)) + f" && touch {prefix}/built")
    log = open(cache / f"{env_file.stem}.log", "w")
    return prefix, subprocess.Popen(["bash", "-c", command], stdout=log, stderr=subprocess.STDOUT,
                                    env=clean_environment())


def clean_environment():
    """The environment without the test venv: a stage must not reach its packages."""
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(part for part in env["PATH"].split(os.pathsep) if part != venv_bin)
    return env


def snakemake_only_path(directory):
    """A directory holding Snakemake and its own dependencies (links), nothing else."""
    directory.mkdir()
    closure = installed_with(["snakemake"])
    site = Path(snakemake.__file__).parent.parent
    for module, distributions in packages_distributions().items():
        if {name.lower().replace("_", "-") for name in distributions} & closure:
            for candidate in (site / module, site / f"{module}.py"):
                if candidate.exists():
                    (directory / candidate.name).symlink_to(candidate)
    return directory


@pytest.fixture(scope="module")
def study(request, tmp_path_factory):
    """(workdir, {env name: python}, fallback path): the tiny study run with its wrapper scripts kept,
    its file server still serving."""
    cache = Path(request.config.cache.mkdir("convbench-envs"))
    builds = {env_file.stem: start_build(env_file, cache) for env_file in ENV_FILES}

    workdir = copy_workflow(tmp_path_factory.mktemp("envs-study"))
    with canonical.FileServer() as server:
        npz = canonical.mnist_npz(200, 50)
        server.files["/mnist.npz"] = npz
        served = {"format": "mnist_npz", "files": [{"url": f"{server.url}/mnist.npz", "sha256": canonical.sha256_bytes(npz)}]}
        canonical.image_folder(workdir / "folder-train", per_class=10, size=16)
        canonical.image_folder(workdir / "folder-test", per_class=3, size=16, seed=2)
        folders = {"format": "image_folder", "path": "folder-train", "test_path": "folder-test", "image_size": 16}
        (workdir / "study.yaml").write_text(yaml.safe_dump({
            "custom_datasets": {"served": served, "folders": folders},  # folders: its test split prepared apart
            "architectures": ["simple_cnn"],
            "variants": {"default": {"augmentation": {"rotation_range": 10}}},
            "export": ["savedmodel", "tflite", "tflite_dynamic_range", "onnx"],
            "tracking": {"mlflow": {"uri": str(workdir / "mlflow-store")}},
        }))
        images = workdir / "new-images"
        images.mkdir()
        Image.new("RGB", (40, 30), (200, 10, 10)).save(images / "red.jpg")
        run_snakemake(workdir, "--cores", "2", "--skip-script-cleanup", "all", "predict",
                      "results/prepared/served/28x28x1.json", "results/prepared/folders/28x28x3.test.json",
                      "--configfile", "study.yaml",
                      config=["training={epochs: 1}", f"predict={{images: {images}}}"])
        # and a search's steps (search_step, choose_recipe): two trials, of which the study's `all` knows nothing
        run_snakemake(workdir, "--cores", "2", "--skip-script-cleanup", "results/search/served/simple_cnn/search.json",
                      "--configfile", "study.yaml",
                      config=["training={epochs: 1}", "search={trials: 2, space: {learning_rate: {log_uniform: [0.001, 0.01]}}}"])
        # and an asynchronous search's lane steps (search_lane), on the other dataset
        run_snakemake(workdir, "--cores", "2", "--skip-script-cleanup", "results/search/folders/simple_cnn/search.json",
                      "--configfile", "study.yaml",
                      config=["training={epochs: 1}", "search={trials: 2, batch: 2, asynchronous: true, "
                                                      "space: {learning_rate: {log_uniform: [0.001, 0.01]}}}"])


        pythons = {}
        for name, (prefix, process) in builds.items():
            if process is not None:
                assert process.wait(timeout=1800) == 0, f"building envs/{name}.yaml failed:\n" + (cache / f"{name}.log").read_text()[-3000:]
            pythons[name] = prefix / "bin" / "python"
        yield workdir, pythons, snakemake_only_path(tmp_path_factory.mktemp("fallback") / "site")  # fetch_file needs the server


def wrapper_script(workdir, script):
    """The wrapper Snakemake generated for `script` (any job of its rule)."""
    found = sorted((workdir / ".snakemake" / "scripts").glob(f"*.{script.name}"))
    assert found, f"the study ran no job with {script.name}"
    return found[0]


def job_of(wrapper_text):
    """The pickled Snakemake job object inside a wrapper script's preamble."""
    literal = re.search(r"pickle\.loads\((b'.*?'|b\".*?\")\)", wrapper_text, flags=re.S).group(1)
    return pickle.loads(ast.literal_eval(literal))


@pytest.mark.parametrize("rule, script, env", [entry for entry in rule_scripts() if entry[0] not in NOT_IN_THE_STUDY],
                         ids=lambda value: getattr(value, "name", value))
def test_fresh_env_runs_its_stage(study, rule, script, env, tmp_path):
    workdir, pythons, fallback = study
    text = wrapper_script(workdir, script).read_text()
    job = job_of(text)
    snakemake_site = str(Path(snakemake.__file__).parent.parent)
    assert repr(snakemake_site) in text
    wrapper = tmp_path / script.name
    wrapper.write_text(text.replace(repr(snakemake_site), repr(str(fallback))))

    outputs = [Path(workdir, path) for path in job.output]
    for path in outputs:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    result = subprocess.run([str(pythons[env.stem]), str(wrapper)], cwd=workdir, capture_output=True, text=True,
                            timeout=900, env=clean_environment())
    log = Path(workdir, job.log[0]).read_text()[-3000:] if job.log else ""
    assert result.returncode == 0, f"{rule} in a fresh envs/{env.name}:\n{result.stderr[-3000:]}\n{log}"
    assert all(path.exists() for path in outputs), f"{rule} in envs/{env.name} left {[str(p) for p in outputs if not p.exists()]} missing"
