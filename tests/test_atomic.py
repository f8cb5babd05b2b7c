import errno
import os
import subprocess

import pytest
from convbench.base.atomic import DiskFull, atomic_path, read_json, remove_empty_folders, write_json


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "model.keras"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_successful_write_replaces_target_with_normal_permissions(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"accuracy": 0.5})
    write_json(target, {"accuracy": 0.9})
    assert read_json(target) == {"accuracy": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    assert target.stat().st_mode & 0o044  # readable by others, unlike mkstemp's 0600


def test_a_full_disk_names_the_file_being_written(tmp_path):
    """The kernel's ENOSPC names no file: atomic_path says which one, and leaves nothing behind."""
    target = tmp_path / "results" / "model.keras"
    with pytest.raises(DiskFull, match=rf"disk full while writing {target} \(.* MB free there now\)") as raised:
        with atomic_path(target), open("/dev/full", "wb") as full:  # a real ENOSPC, from the kernel
            full.write(b"x" * (1 << 16))
            full.flush()
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert list(target.parent.iterdir()) == []


def test_a_write_to_a_really_full_file_system_names_its_path(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        target = small / "metrics.json"
        with pytest.raises(DiskFull, match=f"disk full while writing {target}"):
            write_json(target, {"numbers": list(range(100_000))})
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_remove_empty_folders_keeps_any_folder_with_a_file(tmp_path):
    (tmp_path / "root" / "a" / "b").mkdir(parents=True)
    (tmp_path / "root" / "c" / "d").mkdir(parents=True)
    (tmp_path / "root" / "c" / "d" / "state.json").write_text("{}")
    remove_empty_folders(tmp_path / "root")
    assert sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")) == [
        "root", "root/c", "root/c/d", "root/c/d/state.json"]
    (tmp_path / "root" / "c" / "d" / "state.json").unlink()
    remove_empty_folders(tmp_path / "root")
    assert not (tmp_path / "root").exists()
