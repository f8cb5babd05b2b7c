import pytest

from convbench.atomic import atomic_path, read_json, write_json


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
