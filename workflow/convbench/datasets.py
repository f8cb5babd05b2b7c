"""Datasets: the catalog, fetching raw files, and preparing splits per model input spec.

A prepared dataset is one compressed .npz (uint8 images and int labels for the train,
validation and test splits) plus a manifest JSON that records class names, counts, shapes,
source hashes and the scaling to apply. Every architecture with the same input spec
(size, channels) shares it.
"""

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple  # native (height, width, channels)
    num_classes: int
    files: tuple  # raw file names under resources/datasets/<name>/
    source: str


CATALOG = {
    "digits": DatasetInfo(
        "digits", (8, 8, 1), 10, ("digits.npz",), "scikit-learn's bundled UCI optical digits (offline)"
    ),
}


def get_dataset(name) -> DatasetInfo:
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(CATALOG))}") from None


def spec_name(size, channels):
    """File-name form of an input spec, e.g. '28x28x1'."""
    return f"{size}x{size}x{channels}"


def parse_spec(spec):
    height, width, channels = (int(part) for part in spec.split("x"))
    return height, width, channels


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def load_raw(name, paths):
    """Decode raw files into (images uint8 NHWC, labels, class_names, test or None)."""
    if name == "digits":
        with np.load(paths[0], allow_pickle=False) as data:
            return data["images"], data["labels"], [str(c) for c in data["class_names"]], None
    raise KeyError(f"no decoder for dataset {name!r}")


# ---------------------------------------------------------------- prepare


def validate_raw(images, labels, num_classes, source):
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{source}: expected images of shape (N, H, W, 1|3), got {images.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{source}: {len(images)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"{source}: label {bad} outside the class range 0..{num_classes - 1}")


def stratified_splits(labels, test_labels, *, test_fraction, validation_fraction, seed):
    """Index arrays per split; the test split is carved out only when the dataset has none."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    if test_labels is None:
        index, test_index = train_test_split(index, test_size=test_fraction, stratify=labels, random_state=seed)
    else:
        test_index = None
    train_index, val_index = train_test_split(
        index, test_size=validation_fraction, stratify=labels[index], random_state=seed
    )
    return np.sort(train_index), np.sort(val_index), None if test_index is None else np.sort(test_index)


def resize_images(images, size, channels, batch=4096):
    """Resize to size x size (bilinear, antialiased) and convert channels, in batches to bound memory."""
    import tensorflow as tf

    out = np.empty((len(images), size, size, channels), np.uint8)
    for start in range(0, len(images), batch):
        chunk = tf.convert_to_tensor(images[start : start + batch])
        if chunk.shape[1:3] != (size, size):
            chunk = tf.image.resize(tf.cast(chunk, tf.float32), (size, size), antialias=True)
        if chunk.shape[-1] == 1 and channels == 3:
            chunk = tf.image.grayscale_to_rgb(chunk)
        out[start : start + batch] = np.clip(np.round(chunk.numpy()), 0, 255).astype(np.uint8)
    return out


def scaling_parameters(train_images, scaling):
    """Per-channel (offset, scale) with x_scaled = (x - offset) * scale, from the training split only."""
    channels = train_images.shape[-1]
    if scaling == "unit":
        return [0.0] * channels, [1 / 255] * channels
    pixels = train_images.reshape(-1, channels).astype(np.float64)
    mean, std = pixels.mean(axis=0), pixels.std(axis=0)
    return mean.tolist(), (1 / np.maximum(std, 1e-6)).tolist()


def prepare_dataset(name, raw_paths, spec, out_npz, out_manifest, *, split_seed, test_fraction, validation_fraction, scaling):
    info = get_dataset(name)
    size, _, channels = parse_spec(spec)
    images, labels, class_names, test = load_raw(name, raw_paths)
    validate_raw(images, labels, info.num_classes, raw_paths[0])
    test_images, test_labels = test if test is not None else (None, None)
    if test is not None:
        validate_raw(test_images, test_labels, info.num_classes, raw_paths[-1])

    train_index, val_index, test_index = stratified_splits(
        labels, test_labels, test_fraction=test_fraction, validation_fraction=validation_fraction, seed=split_seed
    )
    if test_index is not None:
        test_images, test_labels = images[test_index], labels[test_index]
    splits = {
        "train": (images[train_index], labels[train_index]),
        "val": (images[val_index], labels[val_index]),
        "test": (test_images, test_labels),
    }
    arrays = {}
    for split, (x, y) in splits.items():
        arrays[f"x_{split}"] = resize_images(x, size, channels)
        arrays[f"y_{split}"] = y.astype(np.int64)
        log.info("%s: %d images -> %s", split, len(x), arrays[f"x_{split}"].shape)
    offset, scale = scaling_parameters(arrays["x_train"], scaling)

    with atomic_path(out_npz) as tmp:
        np.savez_compressed(tmp, **arrays)
    write_json(
        out_manifest,
        {
            "dataset": name,
            "source": info.source,
            "source_sha256": {Path(p).name: sha256(p) for p in raw_paths},
            "class_names": class_names,
            "num_classes": info.num_classes,
            "native_shape": list(images.shape[1:]),
            "input_shape": [size, size, channels],
            "counts": {
                split: np.bincount(arrays[f"y_{split}"], minlength=info.num_classes).tolist() for split in SPLITS
            },
            "preprocessing": {
                "split_seed": split_seed,
                "test_fraction": test_fraction if test is None else None,
                "validation_fraction": validation_fraction,
                "resize": "bilinear, antialiased",
                "scaling": scaling,
                "offset": offset,
                "scale": scale,
            },
        },
    )


# ---------------------------------------------------------------- load


@dataclass
class PreparedData:
    arrays: dict
    manifest: dict

    @property
    def class_names(self):
        return self.manifest["class_names"]

    @property
    def num_classes(self):
        return self.manifest["num_classes"]

    @property
    def input_shape(self):
        return tuple(self.manifest["input_shape"])

    def raw(self, split):
        """uint8 images and int labels of a split."""
        return self.arrays[f"x_{split}"], self.arrays[f"y_{split}"]

    def scaled(self, split):
        """float32 images as the model sees them, and int labels."""
        images, labels = self.raw(split)
        return scale_images(images, self.manifest), labels


def scale_images(images, manifest):
    params = manifest["preprocessing"]
    offset = np.asarray(params["offset"], np.float32)
    scale = np.asarray(params["scale"], np.float32)
    return (images.astype(np.float32) - offset) * scale


def load_prepared(npz_path, manifest_path) -> PreparedData:
    with np.load(npz_path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return PreparedData(arrays, read_json(manifest_path))
