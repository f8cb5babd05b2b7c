"""Prepared data shared between studies (storage.prepared_dir): reused by its content, never
rewritten under another study (convbench.data.sharing)."""

import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import TINY, copy_workflow
from convbench.base.atomic import read_json, write_json
from convbench.data.catalog import get_dataset
from convbench.data.sharing import (
    RULE_PATH_RECORD,
    preparation_constraint,
    preparation_key,
    prepared_state,
    rule_prepared_dir,
    sign_in,
)

DATA = {"split_seed": 42, "test_fraction": 0.2, "validation_fraction": 0.1, "scaling": "unit"}


def test_the_key_is_the_content_not_where_it_lives():
    digits = get_dataset("digits")
    key = preparation_key(digits, "28x28x1", None, **DATA)
    assert key == preparation_key(digits, "28x28x1", None, **DATA, validation_holdout="stratified")
    assert key != preparation_key(digits, "32x32x1", None, **DATA)
    assert key != preparation_key(digits, "28x28x1", None, **{**DATA, "split_seed": 7})
    assert key != preparation_key(digits, "28x28x1", None, **DATA, validation_holdout="last")
    assert key != preparation_key(get_dataset("mnist"), "28x28x1", None, **DATA)
    folder = get_dataset("digits").__class__("photos", "image_folder", (64, 64, 3), 2, "data/photos",
                                             folders=("data/photos", None))
    moved = folder.__class__("photos", "image_folder", (64, 64, 3), 2, "/abs/data/photos/",
                             folders=("/abs/data/photos/", None))
    assert preparation_key(folder, "64x64x3", "f1", **DATA) == preparation_key(moved, "64x64x3", "f1", **DATA)
    assert preparation_key(folder, "64x64x3", "f1", **DATA) != preparation_key(folder, "64x64x3", "f2", **DATA)


def test_the_preparation_rule_matches_all_but_the_data_the_study_reuses():
    constraint = preparation_constraint({"digits": ["28x28x1"], "mnist": ["28x28x1", "32x32x1"]})
    for suffix in (r"\.json", ""):  # the manifest and the folder
        pattern = re.compile(r"results/prepared/(?P<dataset>[a-z0-9_]+)/(?P<spec>" + constraint + ")" + suffix + "$")
        ending = ".json" if suffix else ""
        assert pattern.match(f"results/prepared/digits/32x32x1{ending}")
        assert pattern.match(f"results/prepared/cifar10/28x28x1{ending}")
        assert pattern.match(f"results/prepared/digits/28x28x10{ending}")
        assert not pattern.match(f"results/prepared/digits/28x28x1{ending}")  # reused: no job may rewrite it
        assert not pattern.match(f"results/prepared/mnist/32x32x1{ending}")
        assert pattern.match(f"results/prepared/my_digits/28x28x1{ending}")
    everything = re.compile(r"results/prepared/(?P<dataset>\w+)/(?P<spec>" + preparation_constraint({}) + ")$")
    assert everything.match("results/prepared/digits/28x28x1")


def test_state_of_prepared_data(tmp_path, monkeypatch):
    study, other = tmp_path / "study", tmp_path / "other"
    study.mkdir(), other.mkdir()
    monkeypatch.chdir(study)
    manifest = tmp_path / "shared" / "digits" / "28x28x1.json"
    assert prepared_state(manifest, "k1") == "prepare"  # missing
    write_json(manifest, {"dataset": "digits"})  # an earlier release's: Snakemake's rules decide, as before
    assert prepared_state(manifest, "k1") == "prepare"
    write_json(manifest, {"dataset": "digits", "preparation_key": "k1", "prepared_by": str(other)})
    assert prepared_state(manifest, "k1") == "reuse"
    with pytest.raises(ValueError, match=rf"prepared by the study in {re.escape(str(other))} with other settings"):
        prepared_state(manifest, "k2")

    # This study's own data, read by another study: not re-prepared under it.
    write_json(manifest, {"dataset": "digits", "preparation_key": "k1", "prepared_by": str(study)})
    assert prepared_state(manifest, "k2") == "prepare"
    monkeypatch.chdir(other)
    sign_in(manifest, read_json(manifest))
    monkeypatch.chdir(study)
    sign_in(manifest, read_json(manifest))  # its own: no sign-in
    with pytest.raises(ValueError, match=rf"also read by the study in {re.escape(str(other))};"):
        prepared_state(manifest, "k2")

    # A study moved or copied with its results/ owns the data inside it, whoever wrote it.
    inside = study / "results" / "prepared" / "digits" / "28x28x1.json"
    write_json(inside, {"dataset": "digits", "preparation_key": "k1", "prepared_by": "/where/it/was/before"})
    assert prepared_state(inside, "k2") == "prepare"


def test_the_rules_read_prepared_data_through_one_path_wherever_it_lives(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert rule_prepared_dir("results/prepared") == "results/prepared"
    assert rule_prepared_dir(str(tmp_path / "results" / "prepared") + "/") == "results/prepared"  # the default respelled
    link = tmp_path / "results" / "prepared"
    write_json(link / "digits" / "28x28x1.json", {"dataset": "digits"})
    with pytest.raises(ValueError, match=r"results/prepared holds this study's prepared data: move it there "
                                         r"\(mkdir -p /scratch/a && mv results/prepared/\* /scratch/a/ && rmdir"):
        rule_prepared_dir("/scratch/a")
    shutil.move(link, tmp_path / "a")
    assert rule_prepared_dir("a") == "results/prepared"
    assert link.is_symlink() and (link / "digits" / "28x28x1.json").is_file()
    assert os.readlink(link) == "../a"  # relative: the study and its data move together
    shutil.move(tmp_path / "a", tmp_path / "b")
    assert rule_prepared_dir(str(tmp_path / "b")) == "results/prepared"
    assert os.readlink(link) == str(tmp_path / "b") and (link / "digits" / "28x28x1.json").is_file()
    assert rule_prepared_dir(str(tmp_path / "c"), create=False) == "results/prepared"  # a job's process: no change
    assert os.readlink(link) == str(tmp_path / "b")
    with pytest.raises(ValueError, match=rf"results/prepared links to {tmp_path / 'b'}: move the data back"):
        rule_prepared_dir("results/prepared")


@pytest.mark.parametrize("configured, words", [
    ("results", "storage.prepared_dir is results, which holds results/prepared itself: give the prepared data a folder"),
    (".", "storage.prepared_dir is ., which holds results/prepared itself"),
    ("results/prepared/sub", "storage.prepared_dir is results/prepared/sub, inside results/prepared, the path the rules "
                             "read it through: give a folder outside it"),
])
def test_a_prepared_dir_the_link_cannot_point_to_is_one_line_before_any_job(tmp_path, monkeypatch, configured, words):
    """`results` made results/prepared a link to itself; `results/prepared/sub` crashed with IsADirectoryError and
    left .prepared.link-<pid> behind."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results/prepared").mkdir(parents=True)
    with pytest.raises(ValueError) as error:
        rule_prepared_dir(configured)
    assert words in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "results/prepared").is_symlink() and not list((tmp_path / "results").glob(".prepared.link-*"))


def test_a_prepared_dir_that_vanished_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    """A scratch purge left a dangling link, and every job ended in a bare FileNotFoundError."""
    monkeypatch.chdir(tmp_path)
    assert rule_prepared_dir(str(tmp_path / "scratch")) == "results/prepared"
    (tmp_path / "scratch").rmdir()
    with pytest.raises(ValueError, match=rf"storage.prepared_dir {tmp_path / 'scratch'} is gone \(a scratch purge\?\).*"
                                         rf"mkdir -p {tmp_path / 'scratch'} and rerun"):
        rule_prepared_dir(str(tmp_path / "scratch"))
    assert rule_prepared_dir(str(tmp_path / "elsewhere")) == "results/prepared"  # pointed elsewhere: fine
    write_json(tmp_path / "results/experiments/digits/bn_cnn/default/seed1/train_meta.json", {})
    os.unlink("results/prepared")
    (tmp_path / RULE_PATH_RECORD).write_text(f"{tmp_path / 'old'}\n")  # a study from before the link, its folder gone
    with pytest.raises(ValueError, match="is gone"):
        rule_prepared_dir(str(tmp_path / "old"))


def test_a_study_that_had_its_own_prepared_dir_before_keeps_its_path_until_it_moves(tmp_path, monkeypatch):
    """Its jobs were recorded with that path: reading it through the link would retrain them all."""
    monkeypatch.chdir(tmp_path)
    write_json(tmp_path / "results/experiments/digits/bn_cnn/default/seed1/train_meta.json", {})
    own = str(tmp_path / "scratch" / "a")
    os.makedirs(own)
    assert rule_prepared_dir(own) == own
    assert not os.path.lexists("results/prepared") and (tmp_path / RULE_PATH_RECORD).read_text() == f"{own}\n"
    assert rule_prepared_dir(own + "/") == own
    assert rule_prepared_dir(str(tmp_path / "new")) == "results/prepared"  # moved: through the link from now on
    assert os.readlink("results/prepared") == str(tmp_path / "new")
    assert rule_prepared_dir(str(tmp_path / "new")) == "results/prepared"


def snakemake(workdir, *args):
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=600)


MODEL = "results/experiments/digits/simple_cnn/default/seed1/model.keras"  # training is what reads the data


def two_studies_first_trained(tmp_path):
    """(shared prepared_dir, --config arguments, first study, second study, model target): two copies of the
    workflow on one prepared_dir, the first one's model trained."""
    shared = tmp_path / "shared"
    config = ["--config", *TINY, "architectures=[simple_cnn]", "training={epochs: 1}",
              f"storage={{prepared_dir: {shared}}}"]
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first, second = copy_workflow(tmp_path / "first"), copy_workflow(tmp_path / "second")
    run = snakemake(first, *config, "--", MODEL)
    assert run.returncode == 0, run.stderr[-3000:]
    return shared, config, first, second, MODEL


@pytest.mark.integration
def test_two_studies_share_prepared_data_without_rewriting_it(tmp_path):
    """The issue's case: the second study downloads the dataset again (for another input size) after
    the first prepared it; before, that re-prepared the shared shards and the first study retrained."""
    shared, config, first, second, model = two_studies_first_trained(tmp_path)
    shards = {path: path.stat().st_mtime_ns for path in (shared / "digits").rglob("*") if path.is_file()}

    # The second study trains on the shared 28x28 data and prepares 32x32 data (LeNet-5's) from its own download.
    run = snakemake(second, *config, "architectures=[simple_cnn, lenet5]", "--", model,
                    "results/prepared/digits/32x32x1.json")  # the rules' path: a link to prepared_dir
    assert run.returncode == 0, run.stderr[-3000:]
    assert (second / "resources/datasets/digits/digits.npz").exists()  # it did download
    assert {path: path.stat().st_mtime_ns for path in shards} == shards  # and rewrote nothing of the first's
    history = "results/experiments/digits/simple_cnn/default/seed1/history.csv"
    losses = [pd.read_csv(study / history)[["loss", "val_loss"]].to_numpy().tolist() for study in (first, second)]
    assert losses[0] == losses[1]  # the same data, the same training
    assert "Nothing to be done" in snakemake(first, "-n", *config, "--", model).stdout  # the first retrains nothing

    # Neither study may now re-prepare the shared data with other settings.
    other = [*config, "data={split_seed: 7}"]
    refused = snakemake(second, "-n", *other)
    assert refused.returncode != 0
    assert re.search(rf"Error in the config: storage.prepared_dir: {re.escape(str(shared))}/digits/28x28x1.json "
                     rf"holds digits prepared by the study in {re.escape(str(first.resolve()))} ", refused.stderr)
    refused = snakemake(first, "-n", *other)
    assert f"is also read by the study in {second.resolve()};" in refused.stderr
    assert "Traceback" not in refused.stderr

    # A study with its own prepared data re-prepares it when its settings change, as before.
    shutil.rmtree(shared / "digits" / "28x28x1.readers")
    planned = snakemake(first, "-n", *other)
    assert planned.returncode == 0 and "rule prepare_dataset:" in planned.stdout, planned.stderr[-2000:]

    # Moving prepared_dir re-prepares and retrains nothing: the rules read it through results/prepared.
    shutil.move(shared, tmp_path / "moved")
    moved = [*config[:-1], f"storage={{prepared_dir: {tmp_path / 'moved'}}}"]
    assert "Nothing to be done" in snakemake(first, "-n", *moved, "--", model).stdout


@pytest.mark.integration
def test_a_study_reading_shared_data_is_never_trained_on_another_preparation(tmp_path):
    """Two studies on one prepared_dir at once: while the second trains on the first's data, the first asks to
    prepare it again with other settings. The second signed in as a reader when its run planned (before, only
    when a job first opened the data), so the first stops with one line, and the second's training equals the
    first's on the same data."""
    import time

    shared, config, first, second, model = two_studies_first_trained(tmp_path)

    reading = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", *config, "--", model], cwd=second,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    planned = second / ".snakemake" / "convbench-planned-data.json"
    deadline = time.monotonic() + 120
    while not planned.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert planned.exists()
    refused = snakemake(first, *config, "data={split_seed: 7}", "--", model)  # at once: the second's job may not have opened it yet
    _, errors = reading.communicate(timeout=600)
    assert reading.returncode == 0, errors[-3000:]
    assert refused.returncode != 0 and f"is also read by the study in {second.resolve()};" in refused.stderr
    assert "Traceback" not in refused.stderr
    history = "results/experiments/digits/simple_cnn/default/seed1/history.csv"
    losses = [pd.read_csv(study / history)[["loss", "val_loss"]].to_numpy().tolist() for study in (first, second)]
    assert losses[0] == losses[1]  # the first's data, as planned
