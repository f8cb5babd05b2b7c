"""Preparing: stratified seeded splits, resizing, scaling from the training split, manifest, bad input."""

import numpy as np
import pytest
from convbench.base.atomic import write_json
from convbench.data.catalog import spec_name
from convbench.data.datasets import prepare_dataset, stratified_splits
from convbench.data.prepared import load_prepared, scale_images
from convbench.models.architectures import input_spec


def test_digits_prepared_splits_cover_every_image_once(digits_prepared):
    manifest = digits_prepared.manifest
    counts = {split: sum(manifest["counts"][split]) for split in ("train", "val", "test")}
    assert sum(counts.values()) == 1797
    assert counts["test"] == 360  # 20 %
    assert manifest["input_shape"] == [28, 28, 1]
    for split in ("train", "val", "test"):
        images, labels = digits_prepared.raw(split)
        assert images.shape[1:] == (28, 28, 1) and images.dtype == np.uint8
        assert set(np.unique(labels)) == set(range(10))  # stratified: every class in every split


def test_split_is_stratified_and_depends_only_on_the_seed():
    labels = np.repeat(np.arange(4), 50)
    first = stratified_splits(labels, None, test_fraction=0.2, validation_fraction=0.25, seed=3)
    again = stratified_splits(labels, None, test_fraction=0.2, validation_fraction=0.25, seed=3)
    other = stratified_splits(labels, None, test_fraction=0.2, validation_fraction=0.25, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[2], other[2])
    train, val, test = first
    assert np.bincount(labels[test]).tolist() == [10] * 4
    assert np.bincount(labels[val]).tolist() == [10] * 4
    assert len(set(train) | set(val) | set(test)) == 200


def test_unit_scaling_maps_pixels_to_the_unit_interval(digits_prepared):
    images, _ = digits_prepared.scaled("test")
    assert images.dtype == np.float32 and images.min() >= 0 and images.max() <= 1


def test_standardization_uses_training_statistics_only(tmp_path, digits_raw):
    prepare_dataset("digits", [digits_raw], "28x28x1", tmp_path / "d", tmp_path / "d.json",
                    split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="standardize")
    data = load_prepared(tmp_path / "d", tmp_path / "d.json")
    train = scale_images(data.raw("train")[0], data.manifest)
    assert abs(train.mean()) < 1e-3 and abs(train.std() - 1) < 1e-3
    test = scale_images(data.raw("test")[0], data.manifest)
    assert abs(test.mean()) > 1e-6  # not re-standardized on its own statistics


def test_each_architecture_gets_its_input_spec():
    assert spec_name(*input_spec("simple_cnn", 8, 1)) == "28x28x1"  # 8x8 digits are upscaled
    assert spec_name(*input_spec("simple_cnn", 32, 3)) == "32x32x3"  # never downscaled


def test_label_outside_class_range_fails_and_leaves_nothing(tmp_path):
    raw = tmp_path / "digits.npz"
    np.savez(raw, images=np.zeros((20, 8, 8, 1), np.uint8), labels=np.array([0, 1] * 9 + [0, 12]),
             class_names=np.array([str(i) for i in range(10)]))
    with pytest.raises(ValueError, match=r"digits.npz: label 12 outside the class range 0..9"):
        prepare_dataset("digits", [raw], "28x28x1", tmp_path / "d", tmp_path / "d.json",
                        split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="unit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.npz"]


def test_mean_subtraction_subtracts_the_mean_training_image_pixel_by_pixel(tmp_path, digits_raw):
    prepare_dataset("digits", [digits_raw], "28x28x1", tmp_path / "d", tmp_path / "d.json",
                    split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="mean_subtraction")
    data = load_prepared(tmp_path / "d", tmp_path / "d.json")
    raw = data.raw("train")[0]
    assert np.asarray(data.manifest["preprocessing"]["offset"]).shape == raw.shape[1:]
    train = scale_images(raw, data.manifest)
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-5)  # every pixel, not only on average
    np.testing.assert_allclose(train, (raw - raw.mean(axis=0)) / 255, atol=1e-6)  # the std is not divided out
    test = scale_images(data.raw("test")[0], data.manifest)
    assert np.abs(test.mean(axis=0)).max() > 1e-3  # the training split's mean, not the test split's


def test_a_killed_preparations_staging_folders_go_when_it_is_prepared_again(tmp_path, digits_raw):
    """A killed job leaves its staging folder (as large as the data); each SLURM retry added one more."""
    left = [tmp_path / ".d.staging-k2j4x9qa", tmp_path / ".d.a8f3k2l1"]  # this release's, and earlier ones'
    for folder in left:
        folder.mkdir()
        (folder / "x_train-00000.npy").write_bytes(b"\0" * 100)
    others = [tmp_path / ".e.staging-abcdefgh", tmp_path / ".d.json.q1w2e3r4.json"]  # another spec's; a file
    others[0].mkdir()
    others[1].write_text("{}")
    prepare_dataset("digits", [digits_raw], "28x28x1", tmp_path / "d", tmp_path / "d.json",
                    split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="unit")
    assert not any(folder.exists() for folder in left)
    assert all(path.exists() for path in others)
    assert sorted(path.name for path in tmp_path.glob(".d.*")) == [".d.json.q1w2e3r4.json"]


def test_images_read_by_index_across_shards_match_the_split_in_memory(tmp_path, monkeypatch):
    """A shuffled batch is read shard by shard in file order and comes back in the order asked for:
    indices across shards, out of order, repeated, runs of consecutive images."""
    from conftest import write_arrays
    from convbench.data import datasets

    monkeypatch.setattr(datasets, "SHARD_BYTES", 7 * 4 * 4 * 3)  # 7 images of 4x4x3 per shard
    rng = np.random.default_rng(0)
    arrays = {f"x_{split}": rng.integers(0, 256, (count, 4, 4, 3), dtype=np.uint8)
              for split, count in (("train", 30), ("val", 5), ("test", 5))}
    arrays.update({f"y_{split}": np.arange(len(arrays[f"x_{split}"])) % 2 for split in ("train", "val", "test")})
    data = write_arrays(tmp_path / "d", arrays, class_names=["a", "b"])
    assert len(data.manifest["shards"]["train"]) == 5
    for index in (rng.permutation(30), [29, 0, 0, 6, 7, 8, 13, 14, 2], np.arange(5, 25), [], [12]):
        assert np.array_equal(data.images("train", index), arrays["x_train"][np.asarray(index, int)])
    assert np.array_equal(data.images("train"), arrays["x_train"])
    data.close()


def test_short_reads_are_read_on_until_complete_and_a_cut_shard_is_named(digits_prepared, monkeypatch):
    """A network file system may return fewer bytes than asked (os.preadv's short read)."""
    import os

    from convbench.data import prepared

    data = load_prepared(digits_prepared.directory, manifest=digits_prepared.manifest)
    expected = data.images("test", np.arange(40))
    real_preadv = os.preadv

    def short_read(fd, buffers, offset):
        return real_preadv(fd, [buffers[0][: max(1, len(buffers[0]) // 3)]], offset)

    monkeypatch.setattr(prepared.os, "preadv", short_read)
    assert np.array_equal(data.images("test", np.arange(40)), expected)
    shuffled = np.random.default_rng(0).permutation(40)
    assert np.array_equal(data.images("test", shuffled), expected[shuffled])
    monkeypatch.setattr(prepared.os, "preadv", lambda fd, buffers, offset: 0)  # the file ends early
    with pytest.raises(OSError, match=r"x_test-00000.npy: cut short .*prepare the dataset again"):
        data.images("test", [0])
    data.close()


def test_a_pass_over_the_data_releases_its_file_descriptors_and_the_next_opens_them_again(digits_prepared):
    data = load_prepared(digits_prepared.directory, manifest=digits_prepared.manifest)
    first = data.images("val", [3, 1])
    assert data._files
    data.close()
    assert not data._files
    assert np.array_equal(data.images("val", [3, 1]), first)
    data.close()


def damaged_copy(prepared, tmp_path):
    """A copy of prepared data beside its manifest (so that setting it aside touches only the copy)."""
    import shutil

    copy = tmp_path / "28x28x1"
    shutil.copytree(prepared.directory, copy)
    write_json(tmp_path / "28x28x1.json", prepared.manifest)
    return copy, tmp_path / "28x28x1.json"


def overwrite_same_size(path, position, data):
    with open(path, "r+b") as handle:
        handle.seek(position)
        handle.write(data)


@pytest.mark.parametrize("damage, problem", [
    ("flipped byte", r"x_train-00000.npy: damaged prepared data, SHA-256 \w+…, its manifest says"),
    ("float32", r"x_train-00000.npy: damaged prepared data, SHA-256"),
    ("truncated", r"x_train-00000.npy: damaged prepared data, SHA-256"),
    ("cut in the header", r"x_train-00000.npy: damaged prepared data, SHA-256"),
    ("labels truncated", r"y_train.npy: damaged prepared data, SHA-256"),
    ("labels deleted", r"y_train.npy: damaged prepared data, unreadable"),
])
def test_damaged_prepared_data_is_named_and_set_aside(digits_prepared, tmp_path, damage, problem):
    """Same-size changes (a bad block, a partial copy), another dtype, cut files: the bytes are checked
    against the manifest before any is used, and its manifest goes aside so that the next run prepares again."""
    folder, manifest = damaged_copy(digits_prepared, tmp_path)
    shard, labels = folder / "x_train-00000.npy", folder / "y_train.npy"
    if damage == "flipped byte":
        overwrite_same_size(shard, shard.stat().st_size // 2, b"\x7f")
    elif damage == "float32":
        images = np.load(shard)
        np.save(shard, images.astype(np.float32)[: len(images) // 4])
    elif damage == "truncated":
        shard.write_bytes(shard.read_bytes()[:-100])
    elif damage == "cut in the header":
        shard.write_bytes(shard.read_bytes()[:50])
    elif damage == "labels truncated":
        labels.write_bytes(labels.read_bytes()[:-16])
    else:
        labels.unlink()
    data = load_prepared(folder, manifest)
    with pytest.raises(ValueError, match=problem + r".*set aside as 28x28x1.json.damaged: run snakemake again"):
        data.images("train", [0]) if "labels" not in damage else data.labels("train")
    assert not manifest.exists() and (tmp_path / "28x28x1.json.damaged").exists()
    from convbench.base.job_errors import recurs

    try:
        data.images("train", [0]) if "labels" not in damage else data.labels("train")
    except ValueError as error:
        assert recurs(error)  # not retried: only preparing again mends it


def test_a_shard_in_another_layout_is_refused_even_without_a_hash(digits_prepared, tmp_path):
    """Manifests from before the checks have no label hashes; shards of the same shape swapped or in
    Fortran order are still refused by their header."""
    folder, manifest = damaged_copy(digits_prepared, tmp_path)
    entry = dict(digits_prepared.manifest)
    entry["shards"] = {split: [{k: v for k, v in shard.items() if k != "sha256"} for shard in shards]
                       for split, shards in entry["shards"].items()}
    write_json(manifest, entry)
    shard = folder / "x_train-00000.npy"
    np.save(shard, np.asfortranarray(np.load(shard)))
    with pytest.raises(ValueError, match=r"holds uint8 \(\d+, 28, 28, 1\) in Fortran order, its manifest says uint8"):
        load_prepared(folder, manifest).images("train", [0])


def test_the_in_memory_decision_counts_every_copy_it_keeps(digits_prepared):
    """The training split is held twice (NumPy and TensorFlow's constant), and the validation split too."""
    from convbench.data.prepared import fits_in_memory

    held = 2 * (digits_prepared.nbytes("train") + digits_prepared.nbytes("val"))
    enough_mb = 4 * held / 2**20
    assert fits_in_memory(digits_prepared, enough_mb)
    assert not fits_in_memory(digits_prepared, 0.99 * enough_mb)
    assert fits_in_memory(digits_prepared, 4 * digits_prepared.nbytes("train") / 2**20) is False  # the old count
