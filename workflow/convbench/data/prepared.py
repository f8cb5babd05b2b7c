"""The prepared-data format every stage after preparation reads, and its one reader.

A prepared dataset is a folder of shards beside a JSON manifest (class names, counts, shapes,
source hashes, scaling, and the shards with their SHA-256): per split, uint8 images in .npy
files of at most SHARD_BYTES each (x_<split>-00000.npy, ...) and the int labels in one file
(y_<split>.npy). Images are read by index with positioned reads (os.pread), never mapped: memory
is what a caller asks for, so a dataset larger than memory trains and evaluates batch by batch.
NumPy only: reading prepared data needs none of the packages that prepared it.

Nothing is trusted unread: each shard and label file is checked against its manifest entry (SHA-256,
.npy dtype, order and shape) the first time a process opens it, a full read of the file (+10 s per
job for 15 GB on the 2-core AMD EPYC of BENCHMARKS.md, against minutes of training). Damaged data is
set aside (its manifest renamed *.json.damaged) with one line naming the file, so the next run
prepares it again and retrains what read it.
"""

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.atomic import read_json, sha256
from ..base.memory import DATA_SHARE
from .sharing import sign_in

SPLITS = ("train", "val", "test")
SHARD_BYTES = 256 << 20  # a shard's images at most; the manifest lists every shard and its hash


class DamagedData(ValueError):
    """Prepared data that is not what its manifest says (changed bytes, cut short, another layout)."""

    recurs = True  # until the data is prepared again (convbench.base.job_errors)


@dataclass
class PreparedData:
    manifest: dict
    directory: Path
    _files: dict = field(default_factory=dict, repr=False)  # shard path -> (open file descriptor, header bytes)
    _lock: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _reading: int = field(default=0, repr=False)  # reads in flight (tf.data reads from its own threads)
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
            self._labels[split] = self._read_labels(split)
        return self._labels[split]

    def _read_labels(self, split):
        path = self.directory / f"y_{split}.npy"
        expected = self.manifest.get("labels_sha256", {}).get(split)  # manifests from before #31 have none
        try:
            if expected:
                self._check_hash(path, expected)
            labels = np.load(path, allow_pickle=False)
        except DamagedData:
            raise
        except (OSError, ValueError, EOFError) as error:
            raise self._damaged(path, f"unreadable ({error})") from None
        if labels.shape != (self.count(split),) or labels.dtype.kind not in "iu":
            raise self._damaged(path, f"holds {labels.dtype} {labels.shape}, "
                                      f"its manifest says {self.count(split)} labels")
        return labels

    def images(self, split, index=None):
        """uint8 images of a split at the given indices, in their order (all of them when None)."""
        shards = self.manifest["shards"][split]
        starts = np.cumsum([0] + [shard["images"] for shard in shards])
        index = np.arange(starts[-1]) if index is None else np.asarray(index, np.int64).reshape(-1)
        if len(index) and (index.min() < 0 or index.max() >= starts[-1]):
            raise IndexError(f"{split}: image index out of range 0..{starts[-1] - 1}")
        out = np.empty((len(index), *self.input_shape), np.uint8)
        which = np.searchsorted(starts, index, side="right") - 1
        with self._in_use():
            self._read_into(out, shards, starts, index, which)
        return out

    def _read_into(self, out, shards, starts, index, which):
        """Each shard's images in file order (a shuffled batch reads forward through the shard), one
        positioned read per run of consecutive images straight into `out`: a whole split in order is one
        read per shard, a shuffled batch one per image at about 1.5 µs of Python each."""
        rows = memoryview(out.reshape(-1))  # bytes: out is C-ordered uint8
        size = out[0].nbytes if len(out) else 0
        for shard in np.unique(which).tolist():
            fd, header = self._open(shards[shard])
            positions = np.flatnonzero(which == shard)
            local = index[positions] - starts[shard]
            in_file_order = np.argsort(local, kind="stable")
            positions, local = positions[in_file_order], local[in_file_order]
            breaks = np.flatnonzero((np.diff(local) != 1) | (np.diff(positions) != 1)) + 1
            firsts = np.concatenate([[0], breaks])
            counts = np.diff(np.concatenate([firsts, [len(positions)]]))
            path = self.directory / shards[shard]["file"]
            for first, count, offset in zip((positions[firsts] * size).tolist(), (counts * size).tolist(),
                                            (header + local[firsts] * size).tolist()):
                read_exactly(fd, rows[first : first + count], offset, path)

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
        """(file descriptor, header length) of a shard whose bytes (SHA-256) and .npy header match its
        manifest entry."""
        try:
            if shard.get("sha256"):
                self._check_hash(path, shard["sha256"])
            with open(path, "rb") as handle:
                version = np.lib.format.read_magic(handle)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}[version]
                shape, fortran_order, dtype = read_header(handle)
                header = handle.tell()
        except DamagedData:
            raise
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise self._damaged(path, f"unreadable ({error})") from None
        expected = (shard["images"], *self.input_shape)
        if tuple(shape) != expected or dtype != np.uint8 or fortran_order:
            order = "Fortran" if fortran_order else "C"
            raise self._damaged(path, f"holds {dtype} {tuple(shape)} in {order} order, its manifest says uint8 "
                                      f"{expected} in C order")
        if os.path.getsize(path) != header + int(np.prod(expected)):
            size = header + int(np.prod(expected))
            raise self._damaged(path, f"{os.path.getsize(path)} bytes, its header says {size}")
        return os.open(path, os.O_RDONLY), header

    def _check_hash(self, path, expected):
        actual = sha256(path)
        if actual != expected:
            raise self._damaged(path, f"SHA-256 {actual[:12]}…, its manifest says {expected[:12]}…")

    def _damaged(self, path, problem):
        """DamagedData naming the file; the manifest is set aside so that no job trusts the data again."""
        manifest = self.directory.with_name(self.directory.name + ".json")
        aside = manifest.with_name(manifest.name + ".damaged")
        try:
            os.replace(manifest, aside)
            done = f"its manifest is set aside as {aside.name}: run snakemake again to prepare it again"
        except OSError:
            done = f"prepare it again (delete {manifest})"
        return DamagedData(f"{path}: damaged prepared data, {problem}; {done}")

    @contextmanager
    def _in_use(self):
        with self._lock:
            self._reading += 1
        try:
            yield
        finally:
            with self._lock:
                self._reading -= 1
                self._lock.notify_all()

    def close(self, timeout=60):
        """Release the shards' file descriptors once no read is in flight (a tf.data thread may still
        be finishing one). Reading again opens them again: call it when a pass over the data ends."""
        with self._lock:
            self._lock.wait_for(lambda: not self._reading, timeout)
            for fd, _ in self._files.values():
                os.close(fd)
            self._files.clear()

    def __del__(self):
        self.close()


def read_exactly(fd, buffer, offset, path):
    """Fill `buffer` (writable bytes) from `offset`: a network file system may return fewer bytes per call
    (a short read), so read on until all are there; the file ending first is a clear error."""
    done = os.preadv(fd, [buffer], offset)  # thread-safe: no file offset; no bytes object to copy from
    while done < len(buffer):
        more = os.preadv(fd, [buffer[done:]], offset + done)
        if not more:
            raise OSError(f"{path}: cut short ({offset + done} bytes, {len(buffer) - done} more expected); "
                          "prepare the dataset again")
        done += more


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


HELD_COPIES = 2  # a split in memory is held twice: the NumPy array read from the shards and TensorFlow's constant


def fits_in_memory(data, memory_mb, share=DATA_SHARE):
    """Whether a training job given `memory_mb` holds its training and validation splits in memory
    (the fastest) or reads them from their shards per batch: in memory when every copy it keeps fits
    in a quarter of the job's memory, leaving the rest to TensorFlow, the model and the batches."""
    return HELD_COPIES * (data.nbytes("train") + data.nbytes("val")) <= share * memory_mb * 2**20


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
