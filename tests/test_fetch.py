"""Fetching through Snakemake from a local HTTP server: success, retries, mirrors, failures, hand-placed files.

One Snakemake run (--keep-going) fetches and prepares a set of user-declared datasets, each
served in its canonical format with its real checksum, under a different server behaviour.
"""

import hashlib

import canonical
import pytest
import yaml
from conftest import copy_workflow, run_snakemake
from convbench.base.atomic import read_json

pytestmark = pytest.mark.integration

NPZ = canonical.mnist_npz(200, 50)
OTHER_NPZ = canonical.mnist_npz(200, 50, seed=7)


def npz_dataset(url, sha256=None, **extra):
    return {"format": "mnist_npz", "files": [{"url": url, "sha256": sha256 or canonical.sha256_bytes(NPZ), **extra}]}


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("fetch"))
    with canonical.FileServer() as server:
        base = server.url
        server.files["/mnist.npz"] = NPZ
        for name, data in canonical.idx_files(200, 50).items():
            server.files[f"/fashion/{name}"] = data
        server.files["/cifar-10-binary.tar.gz"] = canonical.cifar10_binary()
        server.files["/cifar-100-binary.tar.gz"] = canonical.cifar100_binary()
        server.files["/mirror/mnist.npz"] = NPZ
        server.files["/flaky.npz"] = NPZ
        server.script["/flaky.npz"] = [500]
        server.files["/cut.npz"] = NPZ
        server.script["/cut.npz"] = ["truncate"] * 10
        server.files["/other.npz"] = OTHER_NPZ
        declared = {
            "ok_npz": npz_dataset(f"{base}/mnist.npz"),
            "ok_idx": {"format": "idx", "files": [
                {"url": f"{base}/fashion/{name}", "sha256": canonical.sha256_bytes(server.files[f"/fashion/{name}"])}
                for name in canonical.FASHION_NAMES]},
            "ok_cifar10": {"format": "cifar10_binary", "files": [
                {"url": f"{base}/cifar-10-binary.tar.gz", "sha256": canonical.sha256_bytes(server.files["/cifar-10-binary.tar.gz"])}]},
            "ok_cifar100": {"format": "cifar100_binary", "files": [
                {"url": f"{base}/cifar-100-binary.tar.gz", "sha256": canonical.sha256_bytes(server.files["/cifar-100-binary.tar.gz"])}]},
            "flaky": npz_dataset(f"{base}/flaky.npz"),
            "mirrored": npz_dataset(f"{base}/gone/mnist.npz", mirrors=[f"{base}/mirror/mnist.npz"]),
            "mismatch": npz_dataset(f"{base}/other.npz"),
            "missing": npz_dataset(f"{base}/missing.npz"),
            "truncated": npz_dataset(f"{base}/cut.npz"),
            "by_hand": npz_dataset(f"{base}/nowhere/mnist.npz"),
            "by_hand_wrong": npz_dataset(f"{base}/nowhere/mnist.npz"),
        }
        for name, data in (("by_hand", NPZ), ("by_hand_wrong", OTHER_NPZ)):
            placed = workdir / "resources" / "datasets" / name / "mnist.npz"
            placed.parent.mkdir(parents=True)
            placed.write_bytes(data)
        (workdir / "study.yaml").write_text(yaml.safe_dump({"custom_datasets": declared}))
        specs = {"ok_cifar10": "32x32x3", "ok_cifar100": "32x32x3"}
        targets = [f"results/prepared/{name}/{specs.get(name, '28x28x1')}.json" for name in declared]
        output = run_snakemake(workdir, "--cores", "2", "--keep-going", *targets, "--configfile", "study.yaml",
                               check=False)
        return workdir, output, list(server.requests)


def log(workdir, dataset, name="mnist.npz"):
    return (workdir / "results" / "logs" / "fetch" / dataset / f"{name}.log").read_text()


def manifest(workdir, dataset, spec="28x28x1"):
    return read_json(workdir / "results" / "prepared" / dataset / f"{spec}.json")


@pytest.mark.parametrize("dataset, spec, classes, counts", [
    ("ok_npz", "28x28x1", 10, (180, 20, 50)),
    ("ok_idx", "28x28x1", 10, (180, 20, 50)),
    ("ok_cifar10", "32x32x3", 10, (180, 20, 40)),
    ("ok_cifar100", "32x32x3", 100, (900, 100, 200)),
])
def test_each_format_is_fetched_verified_and_prepared(fetched, dataset, spec, classes, counts):
    workdir, _, _ = fetched
    prepared = manifest(workdir, dataset, spec)
    assert prepared["num_classes"] == classes
    assert tuple(sum(prepared["counts"][split]) for split in ("train", "val", "test")) == counts
    for name, digest in prepared["source_sha256"].items():
        assert (workdir / "resources" / "datasets" / dataset / name).stat().st_mode & 0o044  # readable by the group, like any output
        assert hashlib.sha256((workdir / "resources" / "datasets" / dataset / name).read_bytes()).hexdigest() == digest


def test_progress_is_in_the_log(fetched):
    workdir, _, _ = fetched
    text = log(workdir, "ok_cifar10", "cifar-10-binary.tar.gz")
    assert "100% of" in text and "verified" in text


def test_server_error_is_retried(fetched):
    workdir, _, requests = fetched
    assert [outcome for path, outcome in requests if path == "/flaky.npz"] == [500, "ok"]
    assert manifest(workdir, "flaky")["counts"]
    assert "Will attempt the download again" in log(workdir, "flaky", "flaky.npz")


def test_mirrors_are_tried_in_order(fetched):
    workdir, _, requests = fetched
    paths = [path for path, _ in requests if path in ("/gone/mnist.npz", "/mirror/mnist.npz")]
    assert paths == ["/gone/mnist.npz", "/mirror/mnist.npz"]  # a 404 does not heal: straight to the mirror
    assert manifest(workdir, "mirrored")["counts"]


def assert_failed_and_left_nothing(workdir, dataset):
    assert not (workdir / "resources" / "datasets" / dataset).exists() or not any(
        (workdir / "resources" / "datasets" / dataset).iterdir())
    assert not (workdir / "results" / "prepared" / dataset).exists()


def test_checksum_mismatch_names_url_expected_and_actual(fetched):
    workdir, output, _ = fetched
    text = log(workdir, "mismatch", "other.npz")
    expected, actual = canonical.sha256_bytes(NPZ), canonical.sha256_bytes(OTHER_NPZ)
    assert "/other.npz" in text and f"expected sha256:{expected}" in text and f"got {actual}" in text
    assert "Error in rule fetch_file" in output
    assert_failed_and_left_nothing(workdir, "mismatch")
    assert [path for path, _ in fetched[2] if path == "/other.npz"] == ["/other.npz"]  # downloaded once, not retried


def test_missing_file_fails_with_the_http_status(fetched):
    workdir, _, _ = fetched
    text = log(workdir, "missing", "missing.npz")
    assert "404 Client Error" in text and "/missing.npz" in text
    assert_failed_and_left_nothing(workdir, "missing")
    assert [path for path, _ in fetched[2] if path == "/missing.npz"] == ["/missing.npz"]


def test_truncated_transfer_fails_and_leaves_nothing(fetched):
    workdir, _, requests = fetched
    assert [outcome for path, outcome in requests if path == "/cut.npz"] == ["truncate"] * 4
    assert "/cut.npz" in log(workdir, "truncated", "cut.npz")
    assert_failed_and_left_nothing(workdir, "truncated")


def test_file_placed_by_hand_is_verified_and_used(fetched):
    workdir, _, requests = fetched
    assert not any(path.startswith("/nowhere") for path, _ in requests)  # never downloaded
    assert manifest(workdir, "by_hand")["source_sha256"]["mnist.npz"] == canonical.sha256_bytes(NPZ)


def test_wrong_file_placed_by_hand_is_refused(fetched):
    workdir, _, _ = fetched
    text = (workdir / "results" / "logs" / "prepare" / "by_hand_wrong" / "28x28x1.log").read_text()
    assert f"sha256 {canonical.sha256_bytes(OTHER_NPZ)} does not match the expected {canonical.sha256_bytes(NPZ)}" in text
    assert not (workdir / "results" / "prepared" / "by_hand_wrong").exists() or not any(
        (workdir / "results" / "prepared" / "by_hand_wrong").iterdir())


def test_image_folder_runs_through_the_whole_study(tmp_path):
    import pandas as pd
    from PIL import Image

    workdir = copy_workflow(tmp_path)
    canonical.image_folder(workdir / "photos", per_class=40, size=36)
    study = {
        "datasets": ["photos"],
        "architectures": ["simple_cnn"],
        "custom_datasets": {"photos": {"format": "image_folder", "path": "photos", "image_size": 32}},
    }
    (workdir / "study.yaml").write_text(yaml.safe_dump(study))
    run_snakemake(workdir, "--cores", "2", "--configfile", "study.yaml", config=["training={epochs: 2}"])
    summary = pd.read_csv(workdir / "results" / "summary.csv")
    assert summary["dataset"].tolist() == ["photos"] and summary["accuracy"].between(0, 1).all()
    prepared = manifest(workdir, "photos", "32x32x3")
    assert prepared["class_names"] == ["cats", "dogs", "owls"] and prepared["counts"]["test"] == [8, 8, 8]
    assert "photos" in (workdir / "results" / "report.html").read_text()

    # A new image in the folder prepares the dataset again (and everything downstream).
    Image.new("RGB", (36, 44)).save(workdir / "photos" / "owls" / "new.png")
    dry_run = run_snakemake(workdir, "--cores", "2", "-n", "--configfile", "study.yaml", config=["training={epochs: 2}"])
    assert "prepare_dataset" in dry_run and "train_model" in dry_run


def test_only_failures_that_can_heal_are_retried():
    import requests
    from convbench.data.fetch import can_heal

    def http_error(status):
        response = requests.Response()
        response.status_code = status
        return requests.exceptions.HTTPError(f"{status}", response=response)

    assert [can_heal(http_error(status)) for status in (500, 503, 429, 408, 404, 403, 410)] == [True] * 4 + [False] * 3
    assert can_heal(requests.exceptions.ConnectionError()) and can_heal(requests.exceptions.ReadTimeout())
    assert not can_heal(ValueError("SHA256 hash of downloaded file does not match the known hash"))


def planned(workdir, declared, target):
    """{rule: count} a dry run plans for `target` with the study's datasets declared as given."""
    import re

    (workdir / "changed.yaml").write_text(yaml.safe_dump({"custom_datasets": declared}))
    output = run_snakemake(workdir, "--cores", "1", "--dry-run", target, "--configfile", "changed.yaml")
    block = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", block, flags=re.M) if rule != "total"}


def test_a_files_identity_is_its_hash_not_its_urls(fetched):
    workdir = fetched[0]
    declared = yaml.safe_load((workdir / "study.yaml").read_text())["custom_datasets"]
    target = "results/prepared/ok_npz/28x28x1.json"
    mirrored = {"ok_npz": npz_dataset("https://example.org/moved/mnist.npz",
                                      mirrors=["https://mirror.example.org/mnist.npz"])}
    assert planned(workdir, {**declared, **mirrored}, target) == {}  # new URLs: nothing refetched or re-prepared
    rehashed = {"ok_npz": npz_dataset(declared["ok_npz"]["files"][0]["url"], sha256="0" * 64)}
    assert planned(workdir, {**declared, **rehashed}, target) == {"fetch_file": 1, "prepare_dataset": 1}


def test_new_class_names_prepare_the_dataset_again(fetched):
    workdir = fetched[0]
    declared = yaml.safe_load((workdir / "study.yaml").read_text())["custom_datasets"]
    renamed = {"ok_npz": {**declared["ok_npz"], "class_names": list("abcdefghij")}}
    assert planned(workdir, {**declared, **renamed}, "results/prepared/ok_npz/28x28x1.json") == {"prepare_dataset": 1}
