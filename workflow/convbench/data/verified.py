"""Checking prepared files (convbench.data.prepared): what identifies a file's content, a study's verified
stamps, hashing an open file descriptor, and setting a manifest aside only if it is the one a reader checked."""

import hashlib
import json
import os
import threading
from pathlib import Path

VERIFIED_DIR = ".snakemake/convbench-verified"  # a study's stamps (only where .snakemake/ exists: a study)


def file_identity(info):
    """What changes when a file's content may have: its size, mtime, ctime (no user sets it), inode and device."""
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "ctime_ns": info.st_ctime_ns, "inode": info.st_ino,
            "device": info.st_dev}


def stamp_path(path):
    """The study's stamp of a file, or None outside a study (no .snakemake/ here: a test, the CLI)."""
    if not os.path.isdir(os.path.dirname(VERIFIED_DIR)):
        return None
    key = hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:32]
    return Path(VERIFIED_DIR) / f"{key}.json"


def read_stamp(path):
    try:
        stamp = json.loads(Path(path).read_text()) if path else None
    except (OSError, ValueError):
        return None
    return {key: value for key, value in stamp.items() if key != "path"} if isinstance(stamp, dict) else None


def hash_descriptor(fd, block=1 << 20):
    """SHA-256 of an open file's content, read by position (the descriptor's offset is left alone)."""
    digest, offset = hashlib.sha256(), 0
    while chunk := os.pread(fd, block, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def set_aside_if_same(manifest, aside, expected_sha256):
    """Rename `manifest` to `aside` if its content is the one read (SHA-256 `expected_sha256`; None: any).
    Atomic against a re-preparation writing a new manifest meanwhile: the file is first moved to a name of
    this process's own, checked there, and put back with link() (which never replaces) if it is not that one.
    Returns whether it was set aside."""
    claimed = manifest.with_name(f".{manifest.name}.checking-{os.getpid()}-{threading.get_ident()}")
    try:
        os.rename(manifest, claimed)
    except FileNotFoundError:
        return aside.exists()  # set aside already (by another job), or being replaced
    if expected_sha256 is None or hashlib.sha256(claimed.read_bytes()).hexdigest() == expected_sha256:
        os.replace(claimed, aside)
        return True
    try:
        os.link(claimed, manifest)  # put back, unless a newer one was written meanwhile
    except FileExistsError:
        pass
    claimed.unlink()
    return False
