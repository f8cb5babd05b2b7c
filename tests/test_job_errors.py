"""A failed job's error reaches the user as one line at the end of the run, like a config error;
the traceback stays in the job's log (convbench.base.job_errors, workflow/scripts/_bootstrap.py)."""

import errno
import re

import canonical
import pytest
import yaml
from conftest import copy_workflow, run_snakemake
from convbench.base import job_errors
from convbench.data.fetch import DownloadError
from convbench.data.formats import DatasetError


def test_one_line_keeps_convbench_messages_and_names_other_kinds():
    assert job_errors.one_line(DatasetError("photos/test: missing here: owls")) == "photos/test: missing here: owls"
    download = DownloadError("could not fetch x.npz; tried 2 URL(s):\n  http://a: 404\n  http://b: 500")
    assert job_errors.one_line(download) == "could not fetch x.npz; tried 2 URL(s):; http://a: 404; http://b: 500"
    assert job_errors.one_line(KeyError("conv9")) == "KeyError: 'conv9'"
    assert len(job_errors.one_line(RuntimeError("x" * 5000))) == job_errors.MAX_CHARS


def test_a_full_disk_without_a_file_name_names_the_results_folder():
    line = job_errors.one_line(OSError(errno.ENOSPC, "No space left on device"))
    assert re.fullmatch(r"disk full while writing .*/results \(.* MB free there now\): free space on that disk, "
                        r"then run snakemake again", line)


def test_recorded_errors_are_summarised_once_per_job_and_a_retry_takes_its_own_back(tmp_path):
    job = {"dataset": "digits", "arch": "simple_cnn", "variant": "default", "seed": "1"}
    job_errors.record("train_model", job, "results/logs/train/x.log", ValueError("first attempt"), tmp_path)
    job_errors.record("train_model", job, "results/logs/train/x.log", ValueError("second attempt"), tmp_path)
    job_errors.record("summarize", {}, "results/logs/summarize.log", DatasetError("bad table"), tmp_path)
    assert job_errors.summary(tmp_path) == [
        "summarize: bad table (traceback: results/logs/summarize.log)",
        "train_model digits/simple_cnn/default/1: ValueError: second attempt (traceback: results/logs/train/x.log)",
    ]
    job_errors.forget("train_model", job, tmp_path)
    assert len(job_errors.summary(tmp_path)) == 1
    job_errors.clear(tmp_path)
    assert job_errors.summary(tmp_path) == []


@pytest.mark.integration
def test_failed_jobs_end_the_run_with_one_line_each_and_no_traceback(tmp_path):
    """A test folder without one of the classes, a truncated JPEG, a download no server answers."""
    workdir = copy_workflow(tmp_path)
    canonical.image_folder(workdir / "train", per_class=20, size=20)
    canonical.image_folder(workdir / "test", classes=("cats", "dogs"), per_class=4, size=20, seed=3)
    canonical.image_folder(workdir / "broken", per_class=20, size=20)
    jpeg = next((workdir / "broken" / "dogs").glob("*.jpg"))
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    study = {
        "datasets": ["split_folders", "broken", "unreachable"],
        "architectures": ["simple_cnn"],
        "custom_datasets": {
            "split_folders": {"format": "image_folder", "path": "train", "test_path": "test", "image_size": 20},
            "broken": {"format": "image_folder", "path": "broken", "image_size": 20},
            "unreachable": {"format": "mnist_npz",
                            "files": [{"url": "http://127.0.0.1:9/mnist.npz", "sha256": "0" * 64}]},
        },
    }
    (workdir / "study.yaml").write_text(yaml.safe_dump(study))
    result = run_snakemake(workdir, "--cores", "2", "--keep-going", "--configfile", "study.yaml", check=False)
    assert "Traceback" not in result
    summary = result[result.index("convbench: 3 job(s) failed:"):].splitlines()[1:4]
    assert summary[0].startswith("  fetch_file unreachable/mnist.npz: could not fetch "
                                 "resources/datasets/unreachable/mnist.npz")
    assert summary[0].endswith("(traceback: results/logs/fetch/unreachable/mnist.npz.log)")
    assert summary[1].startswith("  prepare_dataset broken/28x28x3: ")
    assert f"broken/dogs/{jpeg.name}: cannot read" in summary[1]
    assert summary[2].startswith("  prepare_dataset split_folders/28x28x3: ")
    assert "missing here: owls" in summary[2]
    log = (workdir / "results/logs/prepare/split_folders/28x28x3.log").read_text()
    assert "Traceback (most recent call last)" in log  # the details stay in the job's log

    # The next run starts afresh: a fixed dataset is not reported again.
    canonical.image_folder(workdir / "test", classes=("owls",), per_class=4, size=20, seed=4)
    targets = ["results/prepared/split_folders/28x28x3.json", "results/prepared/broken/28x28x3.json"]
    again = run_snakemake(workdir, *targets, "--cores", "2", "--keep-going", "--configfile", "study.yaml", check=False)
    assert again[again.index("convbench: 1 job(s) failed:"):].splitlines()[1].startswith("  prepare_dataset broken/")
