"""Preparing datasets: the digits' raw file, raw files checked against the catalog's hashes, and the
splits per model input spec (convbench.data.catalog says what each dataset is).

A prepared dataset is a folder of uint8 image shards and int labels for the train, validation and
test splits, plus a manifest JSON that records class names, counts, shapes, source hashes, the
scaling to apply and the shards (convbench.data.prepared). It is written as it is decoded, a chunk at a
time: preparing needs the memory of a chunk, not of the dataset. Every architecture with the same
input spec (size, channels) shares it.
"""

import errno
import hashlib
import io
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..base.atomic import UMASK, DiskFull, atomic_path, read_json, sha256, write_json
from . import formats
from .catalog import DatasetInfo, get_dataset, parse_spec, separate_test
from .prepared import SHARD_BYTES, load_prepared
from .sharing import preparation_key, preparation_lease, test_split_key, this_study

log = logging.getLogger(__name__)

CHUNK_IMAGES = 512  # decoded and written at a time


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


def stratified_splits(labels, test_labels, *, test_fraction, validation_fraction, seed, source="dataset",
                      validation_holdout="stratified"):
    """Index arrays per split; the test split is carved out only when the dataset has none.

    validation_holdout "last" holds out the last share of the training images in their order, as
    Keras' `fit(validation_split=)` does (same count, unshuffled), instead of a stratified draw."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    try:
        if test_labels is None:
            index, test_index = train_test_split(index, test_size=test_fraction, stratify=labels, random_state=seed)
        else:
            test_index = None
        if validation_holdout == "last":  # the training images in their own order, as arrays handed to fit()
            index = np.sort(index)
            split_at = math.floor(len(index) * (1.0 - validation_fraction))  # keras' train_validation_split
            train_index, val_index = index[:split_at], index[split_at:]
        else:
            train_index, val_index = train_test_split(
                index, test_size=validation_fraction, stratify=labels[index], random_state=seed
            )
    except ValueError as error:  # e.g. a class with a single image cannot be stratified
        raise formats.DatasetError(f"{source}: cannot split {len(labels)} images by class ({error})") from error
    return np.sort(train_index), np.sort(val_index), None if test_index is None else np.sort(test_index)


def scaling_parameters(chunks, scaling):
    """(offset, scale) with x_scaled = (x - offset) * scale, from the training split only (`chunks`:
    its uint8 images, an array or an iterable of arrays, read once).

    unit: pixels to [0, 1]. standardize: each channel to mean 0 and std 1 (subtracts the channel's
    mean and divides by its std). mean_subtraction: the mean training image subtracted pixel by
    pixel, then /255 (He et al. 2016's "per-pixel mean subtracted"): offset is (H, W, C).
    """
    if isinstance(chunks, np.ndarray):
        chunks = [chunks[start : start + CHUNK_IMAGES] for start in range(0, len(chunks), CHUNK_IMAGES)]
    total = total_sq = None
    count = 0
    for images in chunks:
        if scaling == "unit":
            return [0.0] * images.shape[-1], [1 / 255] * images.shape[-1]
        if total is None:
            total, total_sq = np.zeros(images.shape[1:]), np.zeros(images.shape[1:])
        pixels = images.astype(np.float64)
        total += pixels.sum(axis=0)
        total_sq += (pixels**2).sum(axis=0)
        count += len(images)
    channels = total.shape[-1]
    if scaling == "mean_subtraction":
        return (total / count).tolist(), [1 / 255] * channels
    values = count * total[..., 0].size
    mean = total.reshape(-1, channels).sum(axis=0) / values
    std = np.sqrt(np.maximum(total_sq.reshape(-1, channels).sum(axis=0) / values - mean**2, 0))
    return mean.tolist(), (1 / np.maximum(std, 1e-6)).tolist()


class ShardWriter:
    """One split's uint8 images into .npy shards of at most SHARD_BYTES each, hashed as they are written."""

    def __init__(self, directory, split, count, shape):
        self.directory, self.split, self.shape = Path(directory), split, tuple(shape)
        self.per_shard = max(1, SHARD_BYTES // int(np.prod(shape)))
        self.remaining, self.shards, self.handle = count, [], None

    def write(self, images):
        try:
            self._write(images)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise DiskFull(self.handle.name) from error  # the kernel's error names no file
            raise

    def _write(self, images):
        while len(images):
            if self.handle is None or self.left == 0:
                self._next_shard()
            part, images = images[: self.left], images[self.left :]
            data = np.ascontiguousarray(part, np.uint8).tobytes()
            self.handle.write(data)
            self.digest.update(data)
            self.left -= len(part)

    def _next_shard(self):
        self._finish_shard()
        images = min(self.per_shard, self.remaining)
        self.remaining -= images
        name = f"x_{self.split}-{len(self.shards):05d}.npy"
        self.handle = open(self.directory / name, "wb")
        self.digest, self.left = hashlib.sha256(), images
        header = io.BytesIO()  # a standard .npy header: np.load reads a shard as it is
        np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (images, *self.shape)})
        self.handle.write(header.getvalue())
        self.digest.update(header.getvalue())
        self.shards.append({"file": name, "images": images})

    def _finish_shard(self):
        if self.handle is not None:
            if self.left:
                raise RuntimeError(f"{self.handle.name}: {self.left} images short")
            self.handle.close()
            self.shards[-1]["sha256"] = self.digest.hexdigest()

    def close(self):
        """The shards' manifest entries ({file, images, sha256}); none for an empty split."""
        if self.handle is None and self.remaining:
            raise RuntimeError(f"{self.split}: no images written")
        self._finish_shard()
        self.handle = None
        if self.remaining:
            raise RuntimeError(f"{self.split}: {self.remaining} images short")
        return self.shards


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

    def chunks(self, part, index, size, channels):
        images = self.decoded.images if part == "train" else self.decoded.test_images
        index = np.arange(len(images)) if index is None else index
        for start in range(0, len(index), CHUNK_IMAGES):
            yield formats.resize_array(images[index[start : start + CHUNK_IMAGES]], size, channels)


class FolderSource:
    """An image folder, decoded file by file, a chunk at a time (bounded memory)."""

    resize = formats.RESIZE_PILLOW

    def __init__(self, info, paths):
        train_root, test_root = info.folders
        self.paths, self.labels = formats.list_image_folder(train_root, info.class_names, log=log)
        self.test_paths, self.test_labels = (
            formats.list_image_folder(test_root, info.class_names, log=log) if test_root else (None, None)
        )
        self.class_names = list(info.class_names)
        self.native_shape = tuple(info.image_shape)
        # the training folder's content only: a test folder of its own is prepared apart (prepare_test_split)
        self.source_hashes = {"fingerprint": formats.folder_fingerprint([train_root])}

    def chunks(self, part, index, size, channels):
        paths = self.paths if part == "train" else self.test_paths
        return decoded_chunks(paths if index is None else [paths[i] for i in index], size, channels)


def decoded_chunks(paths, size, channels):
    """Image files decoded and resized a chunk at a time (uint8 arrays), for bounded memory."""
    for start in range(0, len(paths), CHUNK_IMAGES):
        batch = paths[start : start + CHUNK_IMAGES]
        yield formats.decode_images_into(np.empty((len(batch), size, size, channels), np.uint8), batch, size, channels)
        if (start // CHUNK_IMAGES + 1) % 20 == 0:
            log.info("decoded %d of %d images", start + len(batch), len(paths))


def prepare_dataset(dataset, raw_paths, spec, out_dir, out_manifest, *, split_seed, test_fraction, validation_fraction,
                    scaling, validation_holdout="stratified"):
    """Prepared data (convbench.data.prepared) in `out_dir` and its manifest, written a chunk at a time.
    `dataset`: its DatasetInfo (from the study's resolved catalog), or the name of a built-in one."""
    info = dataset if isinstance(dataset, DatasetInfo) else get_dataset(dataset)
    size, _, channels = parse_spec(spec)
    source = (FolderSource if info.format == "image_folder" else ArraySource)(info, raw_paths)
    train_index, val_index, test_index = stratified_splits(
        source.labels, source.test_labels, test_fraction=test_fraction, validation_fraction=validation_fraction,
        seed=split_seed, source=raw_paths[0], validation_holdout=validation_holdout,
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
    if separate_test(info):  # its own job prepares it (prepare_test_split); its folder was listed, not read
        del plan["test"]
    splits = {split: (labels, source.chunks(part, index, size, channels))
              for split, ((part, index), labels) in plan.items()}
    manifest = {
        "dataset": info.name,
        "source": info.source,
        "source_sha256": source.source_hashes,
        "class_names": source.class_names,
        "num_classes": info.num_classes,
        "native_shape": list(source.native_shape),
        "input_shape": [size, size, channels],
        "preprocessing": {
            "split_seed": split_seed,
            "test_fraction": test_fraction if test_index is not None else None,
            "validation_fraction": validation_fraction,
            "resize": source.resize,  # how prediction resizes a new image the same way
            "scaling": scaling,
            # recorded only when set, so the manifests of studies that never set it stay as they were
            **({"validation_holdout": validation_holdout} if validation_holdout != "stratified" else {}),
        },
        # what the data is (studies sharing storage.prepared_dir reuse it by this), and who prepared it
        "preparation_key": preparation_key(
            info, spec, source.source_hashes.get("fingerprint"), split_seed=split_seed, test_fraction=test_fraction,
            validation_fraction=validation_fraction, scaling=scaling, validation_holdout=validation_holdout),
        "prepared_by": this_study(),
        **({"test_split": f"{Path(out_dir).name}.test.json"} if separate_test(info) else {}),
    }
    write_prepared(out_dir, out_manifest, splits, manifest)


def prepare_test_split(dataset, test_folder, spec, main_manifest, out_dir, out_manifest):
    """The test split of a dataset whose test images have a folder of their own (catalog.separate_test), in
    `out_dir` (<spec>.test/) and its manifest, for the prepared data of `main_manifest`: its class names and
    input size. Its images are stored as uint8 like the others; the main manifest's scaling applies."""
    info = dataset if isinstance(dataset, DatasetInfo) else get_dataset(dataset)
    main = read_json(main_manifest)
    size, _, channels = parse_spec(spec)
    paths, labels = formats.list_image_folder(test_folder, main["class_names"], log=log)
    labels = np.asarray(labels, np.int64)
    validate_labels(labels, info.num_classes, test_folder)
    fingerprint = formats.folder_fingerprint([test_folder])

    manifest = {
        "dataset": info.name, "source": str(test_folder), "source_sha256": {"fingerprint": fingerprint},
        "class_names": main["class_names"], "num_classes": main["num_classes"], "input_shape": main["input_shape"],
        "preprocessing": {"resize": FolderSource.resize},
        "test_of": main["preparation_key"],  # the prepared data it belongs to
        "preparation_key": test_split_key(main["preparation_key"], fingerprint),
        "prepared_by": this_study(),
    }
    write_prepared(out_dir, out_manifest, {"test": (labels, decoded_chunks(paths, size, channels))}, manifest)


STAGING = "staging-"  # .<spec>.staging-XXXXXXXX/: prepared data being written, renamed into place when complete


def remove_abandoned_staging(out_dir):
    """Staging folders an earlier preparation of `out_dir` left when it was killed (or a SLURM retry's
    predecessor, on another node): called while holding the preparation's lease, so none is in use.
    Also those of releases that named them .<spec>.XXXXXXXX/."""
    out_dir = Path(out_dir)
    earlier = re.compile(rf"\.{re.escape(out_dir.name)}\.(?:{STAGING}[a-z0-9_]+|[a-z0-9_]{{8}})")
    for path in out_dir.parent.glob(f".{out_dir.name}.*"):
        if earlier.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
            log.info("removing %s, left by a preparation that did not finish", path)
            shutil.rmtree(path, ignore_errors=True)


def write_prepared(out_dir, out_manifest, splits, manifest):
    """Shards and labels of every split ({split: (labels, uint8 image chunks)}) into `out_dir`, then the
    manifest with counts, shards and the scaling parameters computed from the written training split.
    The folder is written aside and renamed into place, the manifest last: a killed job leaves nothing
    that looks finished. Under the data's lease (convbench.data.sharing.preparation_lease): a preparation of the
    same data running meanwhile (another study's) is waited for, and what it wrote adopted when it is the same
    preparation."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with preparation_lease(out_dir) as waited:
        if waited and prepared_meanwhile(out_dir, out_manifest, manifest.get("preparation_key")):
            log.info("%s was prepared meanwhile by another preparation with the same key: adopted", out_dir)
            return
        remove_abandoned_staging(out_dir)
        write_staged(out_dir, out_manifest, splits, manifest)


def prepared_meanwhile(out_dir, out_manifest, key):
    try:
        return bool(key) and out_dir.is_dir() and read_json(out_manifest).get("preparation_key") == key
    except (OSError, ValueError):
        return False


def write_staged(out_dir, out_manifest, splits, manifest):
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.{STAGING}"))
    manifest = {**manifest, "counts": {}, "shards": {}, "labels_sha256": {},
                "preprocessing": dict(manifest["preprocessing"])}
    try:
        os.chmod(staging, 0o777 & ~UMASK)
        for split, (labels, chunks) in splits.items():
            writer = ShardWriter(staging, split, len(labels), manifest["input_shape"])
            for chunk in chunks:
                writer.write(chunk)
            manifest["shards"][split] = writer.close()
            np.save(staging / f"y_{split}.npy", np.asarray(labels, np.int64))
            manifest["labels_sha256"][split] = sha256(staging / f"y_{split}.npy")
            manifest["counts"][split] = np.bincount(labels, minlength=manifest["num_classes"]).tolist()
            log.info("%s: %d images of %s in %d shard(s)", split, len(labels),
                     "x".join(map(str, manifest["input_shape"])), len(manifest["shards"][split]))
        if "train" in splits:  # the scaling comes from the training split (a test split alone has none)
            written = load_prepared(staging, manifest=manifest)
            offset, scale = scaling_parameters(written.batches("train", CHUNK_IMAGES), manifest["preprocessing"]["scaling"])
            written.close()
            manifest["preprocessing"].update(offset=offset, scale=scale)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_json(out_manifest, manifest)  # last: a manifest names complete shards
