"""Preparing datasets: the digits' raw file, raw files checked against the catalog's hashes, and the
splits per model input spec (convbench.catalog says what each dataset is).

A prepared dataset is one compressed .npz (uint8 images and int labels for the train,
validation and test splits) plus a manifest JSON that records class names, counts, shapes,
source hashes and the scaling to apply. Every architecture with the same input spec
(size, channels) shares it.
"""

import logging
from pathlib import Path

import numpy as np

from . import formats
from .atomic import atomic_path, sha256, write_json
from .catalog import DatasetInfo, get_dataset, parse_spec

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------- fetch


def export_digits(path):
    """Write scikit-learn's bundled digits as the raw file of the `digits` dataset."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 0..16 gray levels -> 0..255 so that every dataset starts as uint8 pixels.
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)[..., np.newaxis]
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp, images=images, labels=bunch.target.astype(np.int64), class_names=np.array([str(c) for c in bunch.target_names])
        )


def verify_raw_files(info, paths):
    """Check every raw file against its published hash (a file placed by hand is checked here too)."""
    hashes = {}
    for remote, path in zip(info.files, paths):
        actual = sha256(path)
        if remote.sha256 and actual != remote.sha256:
            raise formats.DatasetError(
                f"{path}: sha256 {actual} does not match the expected {remote.sha256} "
                f"(source {remote.urls[0]}). If you placed this file by hand it is not the published file; "
                "delete it and rerun to download it."
            )
        hashes[Path(path).name] = actual
    return hashes


# ---------------------------------------------------------------- prepare


def validate_labels(labels, num_classes, source):
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise formats.DatasetError(f"{source}: label {bad} outside the class range 0..{num_classes - 1}")


def validate_raw(images, labels, num_classes, source):
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise formats.DatasetError(f"{source}: expected images of shape (N, H, W, 1|3), got {images.shape}")
    if len(images) != len(labels):
        raise formats.DatasetError(f"{source}: {len(images)} images but {len(labels)} labels")
    validate_labels(labels, num_classes, source)


def stratified_splits(labels, test_labels, *, test_fraction, validation_fraction, seed, source="dataset"):
    """Index arrays per split; the test split is carved out only when the dataset has none."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    try:
        if test_labels is None:
            index, test_index = train_test_split(index, test_size=test_fraction, stratify=labels, random_state=seed)
        else:
            test_index = None
        train_index, val_index = train_test_split(
            index, test_size=validation_fraction, stratify=labels[index], random_state=seed
        )
    except ValueError as error:  # e.g. a class with a single image cannot be stratified
        raise formats.DatasetError(f"{source}: cannot split {len(labels)} images by class ({error})") from error
    return np.sort(train_index), np.sort(val_index), None if test_index is None else np.sort(test_index)


def scaling_parameters(train_images, scaling, chunk_values=1 << 22):
    """(offset, scale) with x_scaled = (x - offset) * scale, from the training split only.

    unit: pixels to [0, 1]. standardize: each channel to mean 0 and std 1 (subtracts the channel's
    mean and divides by its std). mean_subtraction: the mean training image subtracted pixel by
    pixel, then /255 (He et al. 2016's "per-pixel mean subtracted"): offset is (H, W, C).
    """
    channels = train_images.shape[-1]
    if scaling == "unit":
        return [0.0] * channels, [1 / 255] * channels
    # Sums over chunks of ~4M values (32 MB as float64): a float64 copy of a large split would not fit in memory.
    chunk = max(1, chunk_values // max(1, train_images[0].size))
    total, total_sq = np.zeros(train_images.shape[1:]), np.zeros(train_images.shape[1:])
    for start in range(0, len(train_images), chunk):
        pixels = train_images[start : start + chunk].astype(np.float64)
        total += pixels.sum(axis=0)
        total_sq += (pixels**2).sum(axis=0)
    if scaling == "mean_subtraction":
        return (total / len(train_images)).tolist(), [1 / 255] * channels
    count = len(train_images) * train_images[0][..., 0].size
    mean = total.reshape(-1, channels).sum(axis=0) / count
    std = np.sqrt(np.maximum(total_sq.reshape(-1, channels).sum(axis=0) / count - mean**2, 0))
    return mean.tolist(), (1 / np.maximum(std, 1e-6)).tolist()


class ArraySource:
    """A dataset decoded into memory (MNIST, CIFAR: at most a few hundred MB), resized as image folders
    are (Pillow): preparing data needs no TensorFlow, whose start alone costs ~5 s."""

    resize = formats.RESIZE_PILLOW

    def __init__(self, info, paths):
        self.source_hashes = verify_raw_files(info, paths)
        decoded = formats.FORMATS[info.format].decode(paths)
        validate_raw(decoded.images, decoded.labels, info.num_classes, paths[0])
        if decoded.test_images is not None:
            validate_raw(decoded.test_images, decoded.test_labels, info.num_classes, paths[-1])
        self.decoded = decoded
        self.labels, self.test_labels = decoded.labels, decoded.test_labels
        self.class_names = list(info.class_names or decoded.class_names or map(str, range(info.num_classes)))
        self.native_shape = decoded.images.shape[1:]
        expected = tuple(info.image_shape)
        if tuple(self.native_shape) != expected:
            raise formats.DatasetError(f"{paths[0]}: images are {self.native_shape}, the dataset declares {expected}")

    def images(self, part, index, size, channels):
        images = self.decoded.images if part == "train" else self.decoded.test_images
        return formats.resize_array(images if index is None else images[index], size, channels)


class FolderSource:
    """An image folder, decoded file by file straight into the output arrays (bounded memory)."""

    resize = formats.RESIZE_PILLOW

    def __init__(self, info, paths):
        train_root, test_root = info.folders
        self.paths, self.labels = formats.list_image_folder(train_root, info.class_names, log=log)
        self.test_paths, self.test_labels = (
            formats.list_image_folder(test_root, info.class_names, log=log) if test_root else (None, None)
        )
        self.class_names = list(info.class_names)
        self.native_shape = tuple(info.image_shape)
        self.source_hashes = {"fingerprint": formats.folder_fingerprint([p for p in info.folders if p])}

    def images(self, part, index, size, channels):
        paths = self.paths if part == "train" else self.test_paths
        chosen = paths if index is None else [paths[i] for i in index]
        out = np.empty((len(chosen), size, size, channels), np.uint8)
        return formats.decode_images_into(out, chosen, size, channels, log=log)


def prepare_dataset(dataset, raw_paths, spec, out_npz, out_manifest, *, split_seed, test_fraction, validation_fraction,
                    scaling):
    """`dataset`: its DatasetInfo (from the study's resolved catalog), or the name of a built-in one."""
    info = dataset if isinstance(dataset, DatasetInfo) else get_dataset(dataset)
    name = info.name
    size, _, channels = parse_spec(spec)
    source = (FolderSource if info.format == "image_folder" else ArraySource)(info, raw_paths)
    train_index, val_index, test_index = stratified_splits(
        source.labels, source.test_labels, test_fraction=test_fraction, validation_fraction=validation_fraction,
        seed=split_seed, source=raw_paths[0],
    )
    if test_index is None:  # the dataset ships its test split
        test_part, test_labels = ("test", None), source.test_labels
    else:
        test_part, test_labels = ("train", test_index), source.labels[test_index]
    plan = {
        "train": (("train", train_index), source.labels[train_index]),
        "val": (("train", val_index), source.labels[val_index]),
        "test": (test_part, test_labels),
    }
    arrays = {}
    for split, ((part, index), labels) in plan.items():
        arrays[f"x_{split}"] = source.images(part, index, size, channels)
        arrays[f"y_{split}"] = labels.astype(np.int64)
        log.info("%s: %d images -> %s", split, len(labels), arrays[f"x_{split}"].shape)
    offset, scale = scaling_parameters(arrays["x_train"], scaling)

    with atomic_path(out_npz) as tmp:
        np.savez_compressed(tmp, **arrays)
    write_json(
        out_manifest,
        {
            "dataset": name,
            "source": info.source,
            "source_sha256": source.source_hashes,
            "class_names": source.class_names,
            "num_classes": info.num_classes,
            "native_shape": list(source.native_shape),
            "input_shape": [size, size, channels],
            "counts": {
                split: np.bincount(arrays[f"y_{split}"], minlength=info.num_classes).tolist() for split in SPLITS
            },
            "preprocessing": {
                "split_seed": split_seed,
                "test_fraction": test_fraction if test_index is not None else None,
                "validation_fraction": validation_fraction,
                "resize": source.resize,  # how prediction resizes a new image the same way
                "scaling": scaling,
                "offset": offset,
                "scale": scale,
            },
        },
    )
