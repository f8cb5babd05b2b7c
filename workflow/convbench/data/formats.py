"""Decoders for the raw dataset formats convbench reads.

Each decoder turns downloaded files into uint8 NHWC images and int labels, checking what it
reads, and raises DatasetError naming the file and what is wrong. No downloaded file is ever
unpickled: MNIST comes as npz (read with allow_pickle=False), Fashion-MNIST as gzipped IDX,
CIFAR as its binary version.
"""

import gzip
import hashlib
import json
import os
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np


class DatasetError(ValueError):
    """Bad input data: the message names the file and the problem."""


@dataclass
class Decoded:
    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray | None = None  # None: the dataset ships no test split
    test_labels: np.ndarray | None = None
    class_names: list | None = None  # None: the dataset's declared names


# ---------------------------------------------------------------- npz (digits export, keras' mnist.npz)


def read_npz(path, keys):
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in keys if key not in data.files]
            if missing:
                raise DatasetError(f"{path}: npz file has no array {missing[0]!r} (has {', '.join(data.files)})")
            return {key: data[key] for key in keys}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        if isinstance(error, DatasetError):
            raise
        raise DatasetError(f"{path}: not a readable npz file ({error})") from error


def decode_digits(paths):
    arrays = read_npz(paths[0], ("images", "labels", "class_names"))
    return Decoded(arrays["images"], arrays["labels"], class_names=[str(c) for c in arrays["class_names"]])


def decode_mnist_npz(paths):
    arrays = read_npz(paths[0], ("x_train", "y_train", "x_test", "y_test"))
    for key in ("x_train", "x_test"):
        if arrays[key].ndim != 3 or arrays[key].dtype != np.uint8:
            raise DatasetError(f"{paths[0]}: {key} should be uint8 (N, H, W), is {arrays[key].dtype} {arrays[key].shape}")
    return Decoded(arrays["x_train"][..., None], arrays["y_train"], arrays["x_test"][..., None], arrays["y_test"])


# ---------------------------------------------------------------- gzipped IDX (MNIST, Fashion-MNIST, EMNIST, KMNIST)

IDX_UNSIGNED_BYTE = 0x08


def read_idx(path, dimensions):
    """An IDX file of unsigned bytes (http://yann.lecun.com/exdb/mnist/) with `dimensions` dimensions."""
    try:
        with gzip.open(path, "rb") as stream:
            data = stream.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{path}: corrupt or truncated gzip file ({error})") from error
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != IDX_UNSIGNED_BYTE:
        raise DatasetError(f"{path}: not an IDX file of unsigned bytes (header {data[:4].hex() or 'empty'})")
    if data[3] != dimensions:
        kind = "labels" if dimensions == 1 else "images"
        raise DatasetError(f"{path}: expected an IDX file of {kind} ({dimensions} dimensions), found {data[3]} dimensions")
    header = 4 + 4 * dimensions
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], ">u4"))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise DatasetError(
            f"{path}: truncated IDX file: its header promises {' x '.join(map(str, shape))} = {expected} bytes, "
            f"found {len(data) - header}"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def decode_idx(paths):
    """Four files, in this order: train images, train labels, test images, test labels."""
    if len(paths) != 4:
        raise DatasetError(f"idx datasets need 4 files (train images, train labels, test images, test labels), got {len(paths)}")
    train_images, train_labels, test_images, test_labels = (
        read_idx(path, dims) for path, dims in zip(paths, (3, 1, 3, 1))
    )
    for images, labels, image_path in ((train_images, train_labels, paths[0]), (test_images, test_labels, paths[2])):
        if len(images) != len(labels):
            raise DatasetError(f"{image_path}: {len(images)} images but its label file has {len(labels)} labels")
    return Decoded(train_images[..., None], train_labels.astype(np.int64), test_images[..., None], test_labels.astype(np.int64))


# ---------------------------------------------------------------- CIFAR binary version (https://www.cs.toronto.edu/~kriz/cifar.html)


@dataclass(frozen=True)
class CifarLayout:
    train: tuple  # member names inside the archive
    test: tuple
    class_names: str  # member with one class name per line
    label_bytes: int  # CIFAR-100 records carry a coarse and a fine label
    label_index: int  # which of them is the label we train on


CIFAR_LAYOUTS = {
    "cifar10_binary": CifarLayout(
        tuple(f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6)),
        ("cifar-10-batches-bin/test_batch.bin",),
        "cifar-10-batches-bin/batches.meta.txt",
        label_bytes=1,
        label_index=0,
    ),
    "cifar100_binary": CifarLayout(
        ("cifar-100-binary/train.bin",),
        ("cifar-100-binary/test.bin",),
        "cifar-100-binary/fine_label_names.txt",
        label_bytes=2,
        label_index=1,  # fine labels: the 100 classes
    ),
}
CIFAR_PIXELS = 32 * 32 * 3


def read_tar_members(path, names):
    """The bytes of the named members, read in one pass over the gzipped tar (nothing extracted to disk)."""
    wanted, found = set(names), {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if member.name in wanted and member.isfile():
                    found[member.name] = archive.extractfile(member).read()
            # tarfile stops quietly at a damaged header; reading the gzip stream to its end checks its CRC.
            while archive.fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{path}: corrupt archive ({error})") from error
    missing = sorted(wanted - set(found))
    if missing:
        raise DatasetError(f"{path}: archive has no member {missing[0]}")
    return found


def cifar_records(data, layout, source):
    record = layout.label_bytes + CIFAR_PIXELS
    if len(data) % record:
        raise DatasetError(f"{source}: {len(data)} bytes is not a whole number of {record}-byte CIFAR records")
    rows = np.frombuffer(data, np.uint8).reshape(-1, record)
    images = rows[:, layout.label_bytes :].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planes R, G, B -> HWC
    return np.ascontiguousarray(images), rows[:, layout.label_index].astype(np.int64)


def decode_cifar(format_name):
    layout = CIFAR_LAYOUTS[format_name]

    def decode(paths):
        path = paths[0]
        members = read_tar_members(path, (*layout.train, *layout.test, layout.class_names))
        parts = {}
        for split, names in (("train", layout.train), ("test", layout.test)):
            decoded = [cifar_records(members[name], layout, f"{path}: {name}") for name in names]
            parts[split] = (np.concatenate([d[0] for d in decoded]), np.concatenate([d[1] for d in decoded]))
        class_names = [line.strip() for line in members[layout.class_names].decode().splitlines() if line.strip()]
        return Decoded(*parts["train"], *parts["test"], class_names=class_names)

    return decode


@dataclass(frozen=True)
class Format:
    """A raw dataset format: how to decode it and what a dataset in it looks like."""

    name: str  # as `format:` names it in the catalog and under custom_datasets
    decode: Callable  # (paths) -> Decoded
    shape: tuple | None  # native (height, width, channels)
    classes: int | None = None  # fixed class count; None: as many as class_names (10 without)
    files: int = 1  # files one dataset consists of
    sized: bool = False  # custom_datasets may give image_size (IDX files hold any square size)
    declarable: bool = True  # usable under custom_datasets (digits: the bundled set only)


# The one table of formats; the schema's `format` enum for custom_datasets is its declarable keys
# plus image_folder (tested).
FORMATS = {
    format.name: format
    for format in (
        Format("digits", decode_digits, None, 10, declarable=False),
        Format("mnist_npz", decode_mnist_npz, (28, 28, 1)),
        Format("idx", decode_idx, (28, 28, 1), files=4, sized=True),
        Format("cifar10_binary", decode_cifar("cifar10_binary"), (32, 32, 3), 10),
        Format("cifar100_binary", decode_cifar("cifar100_binary"), (32, 32, 3), 100),
    )
}


# ---------------------------------------------------------------- image folders (class sub-folders of PNG/JPEG files)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def class_folders(root):
    """Sorted class sub-folders of an image folder, as image_dataset_from_directory reads them."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such directory" if not root.exists() else f"{root}: not a directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise DatasetError(f"{root}: directory is not readable")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not is_metadata(entry.name))
    if len(classes) < 2:
        raise DatasetError(f"{root}: an image folder needs at least 2 class sub-folders, found {len(classes)}")
    return classes


# Files that operating systems and file managers leave in folders: never images, never errors.
OS_METADATA = {"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"}


def is_metadata(name):
    """Hidden files (.DS_Store, ._name from macOS copies) and Windows' Thumbs.db / desktop.ini."""
    return name.startswith(".") or name.lower() in OS_METADATA


def list_image_folder(root, class_names, log=None):
    """(paths, labels) of every image under root/<class>/, sub-folders included (the class is the
    top-level folder, as in keras.utils.image_dataset_from_directory), in a fixed order.

    Hidden and OS metadata files and folders are skipped (and counted in the log). Fails on a
    class set that differs from `class_names`, an empty class folder, and, naming it, any other
    file that is not a PNG or JPEG.
    """
    found = class_folders(root)
    if found != list(class_names):
        extra, missing = sorted(set(found) - set(class_names)), sorted(set(class_names) - set(found))
        raise DatasetError(
            f"{root}: its class folders differ from the training folder's"
            + (f"; extra here: {', '.join(extra)}" if extra else "") + (f"; missing here: {', '.join(missing)}" if missing else "")
            + ". Train and test folders need the same class sub-folders."
        )
    paths, labels, skipped = [], [], 0
    for label, name in enumerate(class_names):
        folder = Path(root) / name
        files = []
        for directory, folders, names in os.walk(folder, onerror=_raise_listing_error):
            skipped += sum(map(is_metadata, folders)) + sum(map(is_metadata, names))
            folders[:] = sorted(entry for entry in folders if not is_metadata(entry))
            files.extend(Path(directory, entry) for entry in sorted(names) if not is_metadata(entry))
        if not files:
            raise DatasetError(f"{folder}: empty class folder (no PNG or JPEG image in it or its sub-folders)")
        for path in files:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DatasetError(f"{path}: not a PNG or JPEG image (expected .png, .jpg or .jpeg)")
        paths.extend(map(str, files))
        labels.extend([label] * len(files))
    if skipped and log:
        log.info("%s: skipped %d hidden or OS metadata file(s)/folder(s) (.DS_Store, ._*, Thumbs.db, ...)", root, skipped)
    return paths, np.asarray(labels, np.int64)


def _raise_listing_error(error):
    raise DatasetError(f"{error.filename}: cannot list the folder ({error.strerror})") from error


FINGERPRINT_CACHE = ".snakemake/convbench-fingerprints"  # relative to the workflow's working directory


def folder_fingerprint(roots, cache_dir=FINGERPRINT_CACHE):
    """Hash of every file's relative path and content (hidden and OS metadata files aside): changes
    when an image is added, removed, renamed or edited, not when it is only touched or copied.

    Content hashes are cached by (path, size, modification time, change time) in `cache_dir`, so a
    file whose stat did not change is not read again; a touched file is re-read, and hashes the same.
    The change time is the kernel's, which no user can set: a file overwritten with other pixels of
    the same size and modification time (`cp -p` of another version) is read again.
    """
    digest = hashlib.sha256()
    for root in roots:
        cache_path = Path(cache_dir) / (hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16] + ".json")
        try:
            cache = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cache = {}
        fresh = {}
        for directory, folders, files in os.walk(root):
            folders[:] = sorted(folder for folder in folders if not is_metadata(folder))
            for name in sorted(files):
                if is_metadata(name):
                    continue
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, root)
                stat = os.stat(path)
                key = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"
                cached = cache.get(relative)
                content = cached[1] if cached and cached[0] == key else file_digest(path)
                fresh[relative] = [key, content]
                digest.update(f"{relative}\0{content}\n".encode())
        if fresh != cache:
            _write_cache(cache_path, fresh)
    return digest.hexdigest()


def file_digest(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "blake2b").hexdigest()[:32]


def _write_cache(path, entries):
    """Best effort (a read-only checkout still works, only slower): write aside, then rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(entries))
        os.replace(tmp, path)
    except OSError:
        pass


RESIZE_PILLOW = "pillow bilinear"  # Pillow's bilinear resize (antialiased: its filter widens when shrinking)


def decode_image(path, size, channels):
    """One image file as uint8 (size, size, channels): decoded, turned upright by its EXIF
    orientation (as image viewers do), converted to 8 bits and the colour mode (to_8bit),
    resized (RESIZE_PILLOW). size=None keeps its own (height, width)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format not in ("PNG", "JPEG"):
                raise DatasetError(f"{path}: a {image.format} image, expected PNG or JPEG")
            image = to_8bit(ImageOps.exif_transpose(image), channels, path)
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, np.uint8)
    except UnidentifiedImageError as error:
        raise DatasetError(f"{path}: not a PNG or JPEG image (cannot decode it)") from error
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the image ({error})") from error
    return pixels.reshape(*pixels.shape[:2], channels)


def resize_array(images, size, channels):
    """uint8 (N, H, W, 1|3) images as (N, size, size, channels), the way image files are
    (RESIZE_PILLOW; grayscale repeated to RGB, RGB to luminance), one at a time into one array."""
    from PIL import Image

    out = np.empty((len(images), size, size, channels), np.uint8)
    if images.shape[1:] == out.shape[1:]:
        out[...] = images
        return out
    for i, pixels in enumerate(images):
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)  # mode L or RGB
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(image, np.uint8).reshape(size, size, channels)
    return out


def to_8bit(image, channels, path):
    """Any PNG/JPEG mode as 8-bit grayscale ("L") or RGB.

    16-bit grayscale is scaled (value / 257), not clipped as Pillow's convert does; palette,
    alpha and grayscale+alpha images are laid on a white background (what a viewer shows on a white
    page; transparent pixels' stored colours are arbitrary); CMYK JPEGs go through Pillow's conversion.
    """
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image).astype(np.float64)
        if image.mode == "I" and pixels.max(initial=0) <= 255:  # 8-bit values stored wide
            image = Image.fromarray(pixels.astype(np.uint8), "L")
        elif image.mode == "I" and (pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535):
            raise DatasetError(f"{path}: 32-bit integer pixels; save it as 8- or 16-bit PNG")
        else:
            image = Image.fromarray(np.round(pixels / 257).astype(np.uint8), "L")
    elif image.mode in ("P", "PA", "RGBA", "LA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba).convert("RGB")
    elif image.mode not in ("L", "RGB", "CMYK", "YCbCr", "1"):
        raise DatasetError(f"{path}: unsupported image mode {image.mode}; save it as 8-bit grayscale or RGB")
    return image.convert("L" if channels == 1 else "RGB")


def decode_images_into(out, paths, size, channels, progress_every=10_000, log=None):
    """Decode `paths` one by one into the preallocated `out`: memory is the output array, never a list of images."""
    for i, path in enumerate(paths):
        out[i] = decode_image(path, size, channels)
        if log and (i + 1) % progress_every == 0:
            log.info("decoded %d of %d images", i + 1, len(paths))
    return out
