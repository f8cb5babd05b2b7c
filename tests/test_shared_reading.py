"""Prepared data read by jobs while other studies and jobs act on it (issue #43): a job refuses data prepared
again after its run planned for it, opens each file once and checks what it opened, hashes a file only when
it changed since the study last verified it, sets aside only the manifest it checked against, checks the
test split before training, and names damaged data read through tf.data in its own line."""

import json
import os
import shutil

import numpy as np
import pytest
from convbench.base.atomic import write_json
from convbench.base.job_errors import one_line, recurs
from convbench.data import prepared as prepared_module
from convbench.data.prepared import DamagedData, PreparedAgain, load_prepared
from convbench.data.sharing import PLANNED, other_readers, plan_prepared


@pytest.fixture
def study(tmp_path, monkeypatch, digits_prepared):
    """A study's working directory (with .snakemake/) holding a copy of the prepared digits."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".snakemake").mkdir()
    folder = tmp_path / "results/prepared/digits/28x28x1"
    shutil.copytree(digits_prepared.directory, folder)
    write_json(folder.with_suffix(".json"), {**digits_prepared.manifest, "preparation_key": "k1"})
    return folder, folder.with_suffix(".json")


def test_a_job_refuses_data_prepared_again_after_its_run_planned_for_it(study):
    folder, manifest = study
    plan_prepared({"results/prepared/digits/28x28x1.json": "k1"})
    assert load_prepared(folder, "results/prepared/digits/28x28x1.json").count("train")
    write_json(manifest, {**json.loads(manifest.read_text()), "preparation_key": "k2"})  # another study re-prepared it
    with pytest.raises(PreparedAgain) as error:
        load_prepared(folder, "results/prepared/digits/28x28x1.json")
    line = one_line(error.value)
    assert line.startswith("results/prepared/digits/28x28x1.json was prepared again (preparation key k2…, this run "
                           "planned for k1…)") and "run snakemake again" in line and recurs(error.value)


def test_a_job_reads_the_data_its_run_found_when_no_job_prepares_it_again(study):
    """Data from releases before keys (or prepared under an older key recipe) that Snakemake does not prepare
    again: the key on disk when the run planned is what the job finds, and it reads it."""
    folder, manifest = study
    old = json.loads(manifest.read_text())
    old.pop("preparation_key")
    write_json(manifest, old)
    plan_prepared({"results/prepared/digits/28x28x1.json": "k-new"})
    assert load_prepared(folder, "results/prepared/digits/28x28x1.json").count("train")
    write_json(manifest, {**old, "preparation_key": "k-other"})  # another study's preparation meanwhile
    with pytest.raises(PreparedAgain, match="this run planned for k-new…"):
        load_prepared(folder, "results/prepared/digits/28x28x1.json")


def test_reused_data_is_signed_for_when_the_run_plans_not_when_a_job_opens_it(tmp_path, monkeypatch):
    """The owner re-preparing between the decision and the first job saw no reader."""
    owner, reader = tmp_path / "owner", tmp_path / "reader"
    manifest = owner / "prepared/digits/28x28x1.json"
    write_json(manifest, {"dataset": "digits", "preparation_key": "k1", "prepared_by": str(owner)})
    (reader / ".snakemake").mkdir(parents=True)
    monkeypatch.chdir(reader)
    plan_prepared({str(manifest): "k1"})
    monkeypatch.chdir(owner)
    assert other_readers(manifest) == [str(reader)]
    assert json.loads((reader / PLANNED).read_text()) == {str(manifest): ["k1"]}


def test_a_verified_file_is_not_hashed_again_until_it_changes(study, monkeypatch):
    folder, manifest = study
    hashed = []
    real = prepared_module.hash_descriptor
    monkeypatch.setattr(prepared_module, "hash_descriptor", lambda fd: hashed.append(fd) or real(fd))
    files = len(json.loads(manifest.read_text())["shards"]["train"]) + 1  # the shards and the labels
    load_prepared(folder, manifest).raw("train")
    assert len(hashed) == files
    load_prepared(folder, manifest).raw("train")  # another job of the study: stamps, no hashing
    assert len(hashed) == files
    shard = folder / "x_train-00000.npy"
    stat = shard.stat()
    with open(shard, "r+b") as handle:  # a flipped byte, its mtime put back: the ctime still tells
        handle.seek(stat.st_size - 1)
        last = handle.read(1)
        handle.seek(stat.st_size - 1)
        handle.write(bytes([last[0] ^ 0xFF]))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(DamagedData, match="x_train-00000.npy: damaged prepared data, SHA-256"):
        load_prepared(folder, manifest).raw("train")


def test_a_shard_is_opened_once_and_what_was_opened_is_checked(study, monkeypatch):
    """Hash, header, size and reads all use one descriptor: a file swapped in between is never read unchecked."""
    folder, manifest = study
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *args, **kw: opened.append(str(path)) or real_open(path, *args, **kw))
    monkeypatch.setattr("builtins.open", lambda *args, **kw: pytest.fail(f"opened by path: {args[0]}"))
    load_prepared(folder, manifest).images("train", [0, 1])
    assert [path for path in opened if ".snakemake" not in path] == [str(folder / "x_train-00000.npy")]


def test_a_stale_reader_sets_aside_only_the_manifest_it_checked_against(study):
    folder, manifest = study
    reader = load_prepared(folder, manifest)
    shard = folder / "x_train-00000.npy"
    shard.write_bytes(shard.read_bytes()[:-10])
    newer = {**json.loads(manifest.read_text()), "preparation_key": "k2", "note": "prepared again"}
    write_json(manifest, newer)  # a re-preparation wrote a new manifest meanwhile
    with pytest.raises(DamagedData, match="its manifest has been replaced since this job read it"):
        reader.images("train", [0])
    assert json.loads(manifest.read_text()) == newer and not manifest.with_suffix(".json.damaged").exists()
    assert not list(manifest.parent.glob(".*checking*"))
    with pytest.raises(DamagedData, match="set aside as 28x28x1.json.damaged"):
        load_prepared(folder, manifest).images("train", [0])  # a reader of the current manifest sets it aside


def test_damaged_data_read_through_tf_data_is_its_own_line(study):
    """Evaluation reads through tf.data, whose threads wrap the error in an InvalidArgumentError (retried)."""
    import keras
    from convbench.evaluate.inference import split_probabilities

    folder, manifest = study
    data = load_prepared(folder, manifest)
    data.labels("test")
    shard = folder / "x_test-00000.npy"
    shard.write_bytes(shard.read_bytes()[:-10])
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(DamagedData) as error:
        split_probabilities(model, data, "test")
    assert recurs(error.value) and one_line(error.value).endswith("run snakemake again to prepare it again")


def test_training_checks_the_test_split_before_it_trains(study, tmp_path):
    from conftest import train_small

    folder, manifest = study
    shard = folder / "x_test-00000.npy"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(DamagedData, match="x_test-00000.npy"):
        train_small(load_prepared(folder, manifest), "simple_cnn", tmp_path / "exp")
    assert not (tmp_path / "exp" / "history.csv").exists()


def test_data_from_before_hashes_is_a_notice(study, monkeypatch):

    folder, manifest = study
    old = json.loads(manifest.read_text())
    old.pop("labels_sha256")
    old["shards"] = {split: [{k: v for k, v in shard.items() if k != "sha256"} for shard in shards]
                     for split, shards in old["shards"].items()}
    write_json(manifest, old)
    said = []
    monkeypatch.setattr(prepared_module, "notice_this_job", said.append)
    load_prepared(folder, manifest).check()
    assert said and "without hashes: its content cannot be checked; delete 28x28x1.json" in said[0]
    assert np.asarray(load_prepared(folder, manifest).images("train", [0])).shape == (1, 28, 28, 1)


def test_two_preparations_of_the_same_data_at_once_take_turns(tmp_path, digits_raw):
    """The second removed the first one's live staging folder as a killed preparation's leftovers, and the
    first failed with FileNotFoundError. Now the second waits for the lease, then adopts the same preparation."""
    import threading

    from convbench.data import datasets
    from convbench.data.sharing import lease_path

    out = tmp_path / "shared" / "28x28x1"
    entered, release = threading.Event(), threading.Event()
    real_write = datasets.ShardWriter.write
    first_thread = []

    def slow_first(writer, chunk):
        if threading.current_thread() is first_thread[0] and not entered.is_set():
            entered.set()
            release.wait(30)  # the first is writing: its staging folder is live
        return real_write(writer, chunk)

    options = dict(split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="unit")
    errors = []

    def prepare():
        try:
            datasets.prepare_dataset("digits", [digits_raw], "28x28x1", out, out.with_suffix(".json"), **options)
        except Exception as error:  # noqa: BLE001 - asserted below
            errors.append(error)

    datasets.ShardWriter.write = slow_first
    try:
        first = threading.Thread(target=prepare)
        first_thread.append(first)
        first.start()
        assert entered.wait(60) and list(out.parent.glob(".28x28x1.staging-*"))
        second = threading.Thread(target=prepare)
        second.start()
        second.join(3.0)
        assert second.is_alive()  # waiting for the lease, not removing the first one's staging folder
        release.set()
        first.join(120)
        second.join(120)
    finally:
        release.set()
        datasets.ShardWriter.write = real_write
    assert not errors and not lease_path(out).exists()
    data = load_prepared(out, out.with_suffix(".json"))
    data.check()
    assert data.count("train") and not list(out.parent.glob(".28x28x1.staging-*"))


def test_a_lease_left_by_a_dead_preparation_is_broken_once_it_stops_beating(tmp_path):
    from convbench.data.sharing import lease_path, preparation_lease

    out = tmp_path / "28x28x1"
    lease_path(out).write_text(json.dumps({"host": "node7", "pid": 1, "study": "/elsewhere"}))  # killed with its node
    with preparation_lease(out, stale=0.3, poll=0.05) as waited:
        assert waited and json.loads(lease_path(out).read_text())["pid"] == os.getpid()
    assert not lease_path(out).exists()
