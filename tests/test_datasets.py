"""Preparing: stratified seeded splits, resizing, scaling from the training split, manifest, bad input."""

import numpy as np
import pytest
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
