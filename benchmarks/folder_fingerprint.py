"""How long the image-folder fingerprint takes: first (every file read and hashed) and cached
(unchanged files only stat'ed), beside the old stat-only fingerprint (path, size, mtime), which a
`touch` or a copy changed.

    python benchmarks/folder_fingerprint.py [--images 100000] [--folder /tmp/convbench-image-folder]

Uses (and makes once) the same folder as prepare_image_folder.py; each measurement runs in its
own process with a cold or warm cache directory, the page cache being warm (the files were just written).
"""

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "benchmarks"))
sys.path.insert(0, str(PROJECT / "workflow"))

from prepare_image_folder import generate  # noqa: E402


def stat_only(root):
    """The fingerprint before: relative path, size and modification time of every file."""
    digest = hashlib.sha256()
    for directory, folders, files in os.walk(root):
        folders.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(directory, name))
            digest.update(f"{os.path.relpath(os.path.join(directory, name), root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "convbench-image-folder")
    args = parser.parse_args()
    generate(args.folder, args.images)
    from convbench.data.formats import folder_fingerprint

    cache = Path(tempfile.mkdtemp(prefix="fingerprint-cache-"))
    size = sum(path.stat().st_size for path in args.folder.rglob("*.*") if path.is_file()) / 1e6
    rows = [
        ("stat only (before)", timed(stat_only, args.folder)),
        ("content, first run", timed(folder_fingerprint, [args.folder], cache_dir=cache)),
        ("content, cached", timed(folder_fingerprint, [args.folder], cache_dir=cache)),
    ]
    from convbench.base.runtime import cpu_model

    print(f"{args.images:,} images, {size:,.0f} MB; CPU: {cpu_model()}")
    print(f"{'fingerprint':>20} {'seconds':>8}")
    for name, seconds in rows:
        print(f"{name:>20} {seconds:>8.2f}")


if __name__ == "__main__":
    main()
