"""The prepared-data format every stage after preparation reads, and its one reader.

A prepared dataset is a folder of shards beside a JSON manifest (class names, counts, shapes,
source hashes, scaling, and the shards with their SHA-256): per split, uint8 images in .npy
files of at most SHARD_BYTES each (x_<split>-00000.npy, ...) and the int labels in one file
(y_<split>.npy). Images are read by index with positioned reads (os.pread), never mapped: memory
is what a caller asks for, so a dataset larger than memory trains and evaluates batch by batch.
NumPy only: reading prepared data needs none of the packages that prepared it.
"""

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.atomic import read_json
from .sharing import sign_in

SPLITS = ("train", "val", "test")
SHARD_BYTES = 256 << 20  # a shard's images at most; the manifest lists every shard and its hash


@dataclass
class PreparedData:
    manifest: dict
    directory: Path
    _files: dict = field(default_factory=dict, repr=False)  # shard path -> (open file descriptor, header bytes)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _labels: dict = field(default_factory=dict, repr=False)

    @property
    def class_names(self):
        return self.manifest["class_names"]

    @property
    def num_classes(self):
        return self.manifest["num_classes"]

    @property
    def input_shape(self):
        return tuple(self.manifest["input_shape"])

    def count(self, split):
        return sum(shard["images"] for shard in self.manifest["shards"][split])

    def nbytes(self, split):
        return self.count(split) * int(np.prod(self.input_shape))

    def labels(self, split):
        if split not in self._labels:  # read once: evaluation, figures and batches all ask for them
            self._labels[split] = np.load(self.directory / f"y_{split}.npy", allow_pickle=False)
        return self._labels[split]

    def images(self, split, index=None):
        """uint8 images of a split at the given indices, in their order (all of them when None)."""
        shards = self.manifest["shards"][split]
        starts = np.cumsum([0] + [shard["images"] for shard in shards])
        index = np.arange(starts[-1]) if index is None else np.asarray(index, np.int64).reshape(-1)
        if len(index) and (index.min() < 0 or index.max() >= starts[-1]):
            raise IndexError(f"{split}: image index out of range 0..{starts[-1] - 1}")
        out = np.empty((len(index), *self.input_shape), np.uint8)
        size = out[0].nbytes if len(out) else 0
        which = np.searchsorted(starts, index, side="right") - 1
        for shard in np.unique(which):
            fd, header = self._open(shards[shard])
            positions = np.flatnonzero(which == shard)
            local = index[positions] - starts[shard]
            # one read per run of consecutive images (a whole split in order is one read per shard)
            breaks = np.flatnonzero((np.diff(local) != 1) | (np.diff(positions) != 1)) + 1
            for run_positions, run_local in zip(np.split(positions, breaks), np.split(local, breaks)):
                first, count = int(run_positions[0]), len(run_positions)
                data = os.pread(fd, count * size, header + int(run_local[0]) * size)  # thread-safe: no file offset
                if len(data) != count * size:
                    raise OSError(f"{self.directory / shards[shard]['file']}: cut short; prepare the dataset again")
                out[first : first + count] = np.frombuffer(data, np.uint8).reshape(count, *self.input_shape)
        return out

    def batches(self, split, batch_size):
        """The split's uint8 images in order, `batch_size` at a time."""
        for start in range(0, self.count(split), batch_size):
            yield self.images(split, np.arange(start, min(start + batch_size, self.count(split))))

    def raw(self, split):
        """uint8 images and int labels of a whole split (in memory: for splits that fit)."""
        return self.images(split), self.labels(split)

    def scaled(self, split, index=None):
        """float32 images as the model sees them (the whole split, or those indices), and their labels."""
        labels = self.labels(split)
        return scale_images(self.images(split, index), self.manifest), labels if index is None else labels[index]

    def _open(self, shard):
        path = self.directory / shard["file"]
        with self._lock:  # tf.data reads batches from two threads
            if path not in self._files:
                self._files[path] = self._open_shard(path, shard)
        return self._files[path]

    def _open_shard(self, path, shard):
        """(file descriptor, header length) of a shard whose .npy header matches its manifest entry."""
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[version]
            shape, _, _ = read_header(handle)
            header = handle.tell()
        if tuple(shape) != (shard["images"], *self.input_shape):
            raise OSError(f"{path}: holds {shape}, its manifest says {shard['images']} images of {self.input_shape}; "
                          "prepare the dataset again")
        return os.open(path, os.O_RDONLY), header

    def close(self):
        for fd, _ in self._files.values():
            os.close(fd)
        self._files.clear()

    def __del__(self):
        self.close()


class SplitImages:
    """A split's uint8 images read one at a time on demand: images[i], images.shape."""

    def __init__(self, data, split):
        self.data, self.split = data, split
        self.shape = (data.count(split), *data.input_shape)

    def __getitem__(self, index):
        return self.data.images(self.split, [index])[0]

    def __len__(self):
        return self.shape[0]


def scale_images(images, manifest):
    params = manifest["preprocessing"]
    offset = np.asarray(params["offset"], np.float32)
    scale = np.asarray(params["scale"], np.float32)
    return (images.astype(np.float32) - offset) * scale


def fits_in_memory(data, memory_mb, share=0.25):
    """Whether a training job given `memory_mb` holds the training split in memory (the fastest) or
    reads it from its shards per batch: in memory up to a quarter of the job's memory, leaving the
    rest to TensorFlow, the model and the batches."""
    return data.nbytes("train") <= share * memory_mb * 2**20


def prepared_beside(manifest_path):
    """The prepared data a manifest describes (its folder has the manifest's name without .json)."""
    return load_prepared(Path(manifest_path).with_suffix(""), manifest_path)


def load_prepared(directory, manifest_path=None, manifest=None) -> PreparedData:
    """The reader of a prepared dataset (its manifest file, or the manifest itself): nothing is
    read until asked for. Data another study prepared (a shared storage.prepared_dir) is signed for."""
    if manifest is None:
        manifest = read_json(manifest_path)
        sign_in(manifest_path, manifest)
    return PreparedData(manifest, Path(directory))
