"""Atomic file output: a job killed half-way never leaves a file that looks finished."""

import contextlib
import json
import os
import tempfile
from pathlib import Path


UMASK = os.umask(0)
os.umask(UMASK)


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
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
