"""Small datasets written in the exact canonical formats the catalog downloads, and a local HTTP server.

The files are real instances of each format (Keras' mnist.npz, gzipped IDX, the CIFAR binary
tar.gz, class folders of PNG/JPEG); only the number of images is small.
"""

import gzip
import hashlib
import io
import struct
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np


def class_images(count, height, width, channels, num_classes, seed):
    """uint8 images whose class is visible (a bright bar at a class-dependent row) plus noise, and labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % num_classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, (count, height, width, channels), dtype=np.uint8)
    rows = (labels * height) // num_classes
    for i, row in enumerate(rows):
        images[i, row : row + max(1, height // num_classes)] = 255
    return images, labels.astype(np.uint8)


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def mnist_npz(n_train=200, n_test=50, seed=0):
    x_train, y_train = class_images(n_train, 28, 28, 1, 10, seed)
    x_test, y_test = class_images(n_test, 28, 28, 1, 10, seed + 1)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=x_train[..., 0], y_train=y_train, x_test=x_test[..., 0], y_test=y_test)
    return buffer.getvalue()


def idx_gz(array):
    """gzip(IDX): 2 zero bytes, type 0x08 (unsigned byte), the number of dimensions, big-endian sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes())


FASHION_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def idx_files(n_train=200, n_test=50, seed=0):
    """The four Fashion-MNIST files, by name, in the catalog's order."""
    x_train, y_train = class_images(n_train, 28, 28, 1, 10, seed)
    x_test, y_test = class_images(n_test, 28, 28, 1, 10, seed + 1)
    arrays = (x_train[..., 0], y_train, x_test[..., 0], y_test)
    return {name: idx_gz(array) for name, array in zip(FASHION_NAMES, arrays)}


def cifar_records(images, labels, coarse=None):
    """Binary version records: [coarse label] label, then 1024 R, 1024 G, 1024 B bytes (row-major)."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    columns = [labels[:, None]] if coarse is None else [coarse[:, None], labels[:, None]]
    return np.concatenate([*columns, planes], axis=1).astype(np.uint8).tobytes()


def tar_gz(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cifar10_binary(per_batch=40, n_test=40, seed=0):
    members = {}
    for batch in range(1, 6):
        images, labels = class_images(per_batch, 32, 32, 3, 10, seed + batch)
        members[f"cifar-10-batches-bin/data_batch_{batch}.bin"] = cifar_records(images, labels)
    images, labels = class_images(n_test, 32, 32, 3, 10, seed)
    members["cifar-10-batches-bin/test_batch.bin"] = cifar_records(images, labels)
    members["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(CIFAR10_CLASSES) + "\n\n").encode()
    return tar_gz(members)


def cifar100_binary(n_train=1000, n_test=200, seed=0):
    members = {}
    for split, count in (("train", n_train), ("test", n_test)):
        images, labels = class_images(count, 32, 32, 3, 100, seed + len(split))
        members[f"cifar-100-binary/{split}.bin"] = cifar_records(images, labels, coarse=labels // 5)
    members["cifar-100-binary/fine_label_names.txt"] = "\n".join(f"fine_{i}" for i in range(100)).encode()
    members["cifar-100-binary/coarse_label_names.txt"] = "\n".join(f"coarse_{i}" for i in range(20)).encode()
    return tar_gz(members)


def image_folder(root, classes=("cats", "dogs", "owls"), per_class=30, size=40, seed=0):
    """Class sub-folders of PNG and JPEG files (alternating), as image_dataset_from_directory reads them."""
    from PIL import Image

    root = Path(root)
    images, labels = class_images(per_class * len(classes), size, size + 8, 3, len(classes), seed)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        suffix = "png" if i % 2 else "jpg"
        Image.fromarray(image).save(folder / f"img{i:05d}.{suffix}")
    return root


class FileServer:
    """An HTTP server on 127.0.0.1 serving in-memory files, with scripted failures per path.

    `files[path] = bytes`; `script[path] = [500, "truncate", ...]` is consumed one entry per request
    ("ok" when empty); a path not in `files` is a 404. `requests` records (path, outcome).
    """

    def __init__(self):
        self.files, self.script, self.requests = {}, {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path
                outcome = server.script.get(path, []).pop(0) if server.script.get(path) else "ok"
                if path not in server.files:
                    outcome = 404
                server.requests.append((path, outcome))
                if isinstance(outcome, int):
                    self.send_error(outcome)
                    return
                data = server.files[path]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                # "truncate": the connection drops half-way, as a broken transfer does
                self.wfile.write(data if outcome == "ok" else data[: len(data) // 2])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
