"""The prepared-data format every stage after preparation reads, and its one reader.

A prepared dataset is a folder of shards beside a JSON manifest (class names, counts, shapes,
source hashes, scaling, and the shards with their SHA-256): per split, uint8 images in .npy
files of at most SHARD_BYTES each (x_<split>-00000.npy, ...) and the int labels in one file
(y_<split>.npy). Images are read by index with positioned reads (os.pread), never mapped: memory
is what a caller asks for, so a dataset larger than memory trains and evaluates batch by batch.
NumPy only: reading prepared data needs none of the packages that prepared it.

Nothing is trusted unread: each shard and label file is opened once, and what was opened (the file
descriptor, not the path) is checked against its manifest entry (SHA-256, .npy dtype, order and shape).
Hashing is a full read of the file (+10 s per job for 15 GB on the 2-core AMD EPYC of BENCHMARKS.md): a
study keeps a verified stamp per file (.snakemake/convbench-verified/: its size, mtime, ctime, inode and
device, and the hash it matched), so a file unchanged since a job of the study hashed it is not hashed again.
Damaged data is set aside (its manifest renamed *.json.damaged, only if it is still the manifest the reader
checked against) with one line naming the file, so the next run prepares it again and retrains what read it.

Every job also compares the manifest's preparation key with the one its run planned for
(convbench.data.sharing.PLANNED): data prepared again meanwhile (by another study sharing prepared_dir) is
one line, never read as if it were what the run planned.
"""

import hashlib
import io
import json
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.atomic import write_json
from ..base.job_errors import notice_this_job
from ..base.memory import DATA_SHARE
from .sharing import expected_keys, sign_in
from .verified import file_identity, hash_descriptor, read_stamp, set_aside_if_same, stamp_path

SPLITS = ("train", "val", "test")
SHARD_BYTES = 256 << 20  # a shard's images at most; the manifest lists every shard and its hash


class DamagedData(ValueError):
    """Prepared data that is not what its manifest says (changed bytes, cut short, another layout)."""

    recurs = True  # until the data is prepared again (convbench.base.job_errors)


class PreparedAgain(ValueError):
    """Prepared data whose manifest is not the preparation the run planned for: prepared again meanwhile."""

    recurs = True  # until the main process decides again


MAX_NPY_HEADER = 65536 + 16  # a .npy header's longest (format 2.0 allows more; ours are a few hundred bytes)


@dataclass
class PreparedData:
    manifest: dict
    directory: Path
    manifest_sha256: str = None  # of the manifest's bytes as read: only that manifest is set aside as damaged
    test_manifest: tuple = None  # (path, SHA-256) of a test split prepared apart (prepare_test_split), attached
    failure: Exception = field(default=None, repr=False)  # the DamagedData a read raised (tf.data wraps it)
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
        path = self.directory / self.manifest.get("label_files", {}).get(split, f"y_{split}.npy")
        expected = self.manifest.get("labels_sha256", {}).get(split)  # manifests from before #31 have none
        fd = self._open_verified(path, expected)
        try:
            with os.fdopen(os.dup(fd), "rb") as stream:
                labels = np.load(stream, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise self._damaged(path, f"unreadable ({error})") from None
        finally:
            os.close(fd)
        if labels.shape != (self.count(split),) or labels.dtype.kind not in "iu":
            raise self._damaged(path, f"holds {labels.dtype} {labels.shape}, "
                                      f"its manifest says {self.count(split)} labels")
        return labels

    def check(self, splits=None):
        """Open and verify every file of these splits now (a training job checks the test split before it
        trains, not after; not a test split prepared apart: training does not depend on it, and its own job
        may be preparing it again). Unchanged files cost a stat each (their stamps)."""
        own = [split for split in SPLITS if split in self.manifest["shards"]
               and not (split == "test" and self.test_manifest)]
        for split in own if splits is None else splits:
            self.labels(split)
            for shard in self.manifest["shards"][split]:
                self._open(shard)
        if not self.manifest.get("labels_sha256"):
            notice_this_job(f"{self.directory}: prepared by an earlier release, without hashes: its content cannot be "
                            f"checked; delete {self.manifest_path().name} beside it to prepare it again with them")

    def manifest_path(self):
        return self.directory.with_name(self.directory.name + ".json")

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
        manifest entry: the checks read the opened file, so a file swapped meanwhile is never read unchecked."""
        fd = self._open_verified(path, shard.get("sha256"))
        try:
            stream = io.BytesIO(os.pread(fd, MAX_NPY_HEADER, 0))
            version = np.lib.format.read_magic(stream)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[version]
            shape, fortran_order, dtype = read_header(stream)
            header, size = stream.tell(), os.fstat(fd).st_size
        except (OSError, ValueError, KeyError, EOFError) as error:
            os.close(fd)
            raise self._damaged(path, f"unreadable ({error})") from None
        expected = (shard["images"], *self.input_shape)
        problem = None
        if tuple(shape) != expected or dtype != np.uint8 or fortran_order:
            order = "Fortran" if fortran_order else "C"
            problem = f"holds {dtype} {tuple(shape)} in {order} order, its manifest says uint8 {expected} in C order"
        elif size != header + int(np.prod(expected)):
            problem = f"{size} bytes, its header says {header + int(np.prod(expected))}"
        if problem:
            os.close(fd)
            raise self._damaged(path, problem)
        return fd, header

    def _open_verified(self, path, expected):
        """An open file descriptor of `path` whose content has SHA-256 `expected` (None: unchecked, manifests of
        earlier releases): hashed from the descriptor unless the study's stamp says this very file (size, mtime,
        ctime, inode, device) matched `expected` before."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as error:
            raise self._damaged(path, f"unreadable ({error})") from None
        if not expected:
            return fd
        try:
            identity = file_identity(os.fstat(fd))
            stamp = stamp_path(path)
            if read_stamp(stamp) == {"sha256": expected, **identity}:
                return fd
            actual = hash_descriptor(fd)
        except OSError as error:
            os.close(fd)
            raise self._damaged(path, f"unreadable ({error})") from None
        if actual != expected:
            os.close(fd)
            raise self._damaged(path, f"SHA-256 {actual[:12]}…, its manifest says {expected[:12]}…")
        if stamp is not None:
            try:
                write_json(stamp, {"sha256": expected, **identity, "path": str(path)})
            except OSError:
                pass  # no stamp: the next job hashes it again
        return fd

    def _damaged(self, path, problem):
        """DamagedData naming the file; the manifest is set aside so that no job trusts the data again, if it is
        still the one this reader checked against (a newer one, prepared again meanwhile, stays)."""
        if self.failure is not None:  # a second read of the same damage (another tf.data thread)
            return self.failure
        manifest, read_sha256 = self.manifest_path(), self.manifest_sha256
        if self.test_manifest and Path(path).parent.name == Path(self.test_manifest[0]).stem:
            manifest, read_sha256 = Path(self.test_manifest[0]), self.test_manifest[1]  # only the test split's
        aside = manifest.with_name(manifest.name + ".damaged")
        try:
            if set_aside_if_same(manifest, aside, read_sha256):
                done = f"its manifest is set aside as {aside.name}: run snakemake again to prepare it again"
            else:
                done = "its manifest has been replaced since this job read it (prepared again): run snakemake again"
        except OSError:
            done = f"prepare it again (delete {manifest})"
        self.failure = DamagedData(f"{path}: damaged prepared data, {problem}; {done}")
        return self.failure

    @contextmanager
    def reading(self):
        """Within: a read that tf.data made in its own threads and TensorFlow wrapped in an error of its own (an
        InvalidArgumentError whose message is cut) comes back as the DamagedData it was, not to be retried."""
        try:
            yield
        except Exception as error:
            if self.failure is not None and error is not self.failure:
                raise self.failure from None
            raise

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
    read until asked for. Data another study prepared (a shared storage.prepared_dir) is signed for.
    Raises PreparedAgain when the manifest is not the preparation this run planned for."""
    if manifest is not None:
        return PreparedData(manifest, Path(directory))
    content = Path(manifest_path).read_bytes()
    manifest = json.loads(content)
    expected = expected_keys(manifest_path)
    if expected and manifest.get("preparation_key") not in expected:
        planned = " or ".join(f"{key[:12]}…" for key in sorted(filter(None, expected)))
        raise PreparedAgain(f"{manifest_path} was prepared again (preparation key {str(manifest.get('preparation_key'))[:12]}…, "
                            f"this run planned for {planned}), most likely by another study sharing "
                            "storage.prepared_dir: this job would read other data than its run planned; run snakemake "
                            "again, which decides anew what to prepare and retrain")
    sign_in(manifest_path, manifest)
    manifest, test_manifest = with_test_split(manifest, Path(manifest_path))
    return PreparedData(manifest, Path(directory), manifest_sha256=hashlib.sha256(content).hexdigest(),
                        test_manifest=test_manifest)


def with_test_split(manifest, manifest_path):
    """(manifest, (test manifest path, SHA-256) or None): a test split prepared apart (`test_split`: its
    manifest beside this one) joins the manifest, its files named from this data's folder, when it is there
    and was prepared for this data. Without it the data has no test split: training needs none."""
    if "test_split" not in manifest:
        return manifest, None
    path = manifest_path.with_name(manifest["test_split"])
    try:
        content = path.read_bytes()
        test = json.loads(content)
    except (OSError, ValueError):
        return manifest, None
    if test.get("test_of") != manifest.get("preparation_key"):
        return manifest, None  # for other data: its job prepares it again before anything evaluates
    expected = expected_keys(path)
    if expected and test.get("preparation_key") not in expected:
        raise PreparedAgain(f"{path} was prepared again after this run planned to read it, most likely by another "
                            "study sharing storage.prepared_dir: run snakemake again")
    folder = f"../{path.name.removesuffix('.json')}"
    joined = {
        **manifest,
        "shards": {**manifest["shards"], "test": [{**shard, "file": f"{folder}/{shard['file']}"}
                                                   for shard in test["shards"]["test"]]},
        "counts": {**manifest.get("counts", {}), "test": test["counts"]["test"]},
        "labels_sha256": {**manifest.get("labels_sha256", {}), "test": test["labels_sha256"]["test"]},
        "label_files": {"test": f"{folder}/y_test.npy"},
    }
    return joined, (str(path), hashlib.sha256(content).hexdigest())

