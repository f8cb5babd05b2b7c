"""Atomic file output: a job killed half-way never leaves a file that looks finished."""

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

UMASK = os.umask(0)
os.umask(UMASK)


class DiskFull(OSError):
    """No space left while writing a named file."""

    recurs = True  # until someone frees space (convbench.base.job_errors)

    def __init__(self, path):
        super().__init__(errno.ENOSPC, disk_full_message(path), str(path))

    def __str__(self):
        return self.strerror


def disk_full_message(path):
    folder = Path(path).parent if Path(path).parent.exists() else Path(".")
    try:
        free = f"{shutil.disk_usage(folder).free / 1e6:,.0f} MB free there now"
    except OSError:
        free = "free space unknown"
    return f"disk full while writing {path} ({free}): free space on that disk, then run snakemake again"


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    `suffix` defaults to the target's suffix, since some writers (Keras, NumPy) choose the
    format by it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
    os.close(handle)
    os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; results should read like any other file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as error:
        if error.errno == errno.ENOSPC and not isinstance(error, DiskFull):
            raise DiskFull(path) from error  # the kernel's error names no file
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_empty_folders(root):
    """Remove every folder under `root` (and root) that holds nothing, deepest first. Run only while
    no job runs: a job may be creating one of them."""
    root = Path(root)
    if not root.is_dir():
        return
    for directory, _, _ in sorted(os.walk(root), key=lambda entry: -len(Path(entry[0]).parts)):
        try:
            os.rmdir(directory)
        except OSError:  # not empty
            pass


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path, data):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_to_builtin) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text())


def _to_builtin(value):
    """NumPy scalars and arrays to plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


@contextlib.contextmanager
def taking_turns(lock_path):
    """Exclusive use of what `lock_path` guards while the block runs, among processes on one machine (an flock;
    nothing to wait for when lock_path is None)."""
    if lock_path is None:
        yield
        return
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
