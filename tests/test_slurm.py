"""The tiny study through a real single-node SLURM cluster (tests/slurm/cluster.sh) and profiles/slurm.

Asserts that jobs went through sbatch, GPU rules asked SLURM for a GPU and saw the device it
gave them, a training job cancelled with scancel mid-training is resubmitted and resumes from its
checkpoint, and the results equal a local run's.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from conftest import PROJECT, TINY, copy_workflow
from convbench.base.atomic import read_json

pytestmark = pytest.mark.slurm
HARNESS = PROJECT / "tests" / "slurm" / "cluster.sh"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol")


def require_slurm():
    if not all(shutil.which(tool) for tool in DAEMONS) or os.geteuid() != 0:
        if os.environ.get("CONVBENCH_REQUIRE_SLURM"):
            pytest.fail("SLURM is required here (CONVBENCH_REQUIRE_SLURM) but its daemons or root are missing")
        pytest.skip("needs root and Debian's munge, slurmctld, slurmd, slurm-client")


def test_the_test_cluster_puts_back_another_clusters_config_link(tmp_path):
    """Runs before the module's cluster starts (same ports): start, stop, and the link is as it was."""
    require_slurm()
    link = "/etc/slurm/slurm.conf"
    if os.path.exists(link) and not os.path.islink(link):
        pytest.skip("this machine has a real /etc/slurm/slurm.conf")
    before = os.readlink(link) if os.path.islink(link) else None
    os.makedirs("/etc/slurm", exist_ok=True)
    try:
        if os.path.islink(link):
            os.remove(link)
        os.symlink("/elsewhere/other-cluster.conf", link)
        subprocess.run(["bash", HARNESS, "start", tmp_path], check=True, capture_output=True, text=True, timeout=120)
        assert os.readlink(link) == str(tmp_path / "slurm.conf")
        subprocess.run(["bash", HARNESS, "stop", tmp_path], check=True, capture_output=True, timeout=120)
        assert os.readlink(link) == "/elsewhere/other-cluster.conf"
    finally:
        os.remove(link)
        if before:
            os.symlink(before, link)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require_slurm()
    work = tmp_path_factory.mktemp("slurm")
    subprocess.run(["bash", HARNESS, "start", work], check=True, capture_output=True, text=True, timeout=120)
    yield {**os.environ, "SLURM_CONF": str(work / "slurm.conf")}
    subprocess.run(["bash", HARNESS, "stop", work], capture_output=True, timeout=120)


def slurm(env, *command):
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30).stdout


def cancel_training_mid_way(process, workdir, env, deadline, seen):
    """scancel bn_cnn's experiment job (train and evaluate as one group job) once its
    training has checkpointed an epoch; returns the job id, as the training job logged it."""
    checkpoint = workdir / "results" / "checkpoints" / "digits" / "bn_cnn" / "default" / "seed1" / "state.json"
    log = workdir / "results" / "logs" / "train" / "digits" / "bn_cnn" / "default" / "seed1.log"
    while time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
        seen.append(line)
        if re.search(r"submitted with SLURM jobid \d+ \(log: \S+/group_experiment", line):
            while not checkpoint.exists():
                assert time.monotonic() < deadline and process.poll() is None, "training never checkpointed"
                time.sleep(0.1)
            job_id = re.search(r"SLURM job (\d+): CUDA_VISIBLE_DEVICES", log.read_text()).group(1)
            slurm(env, "scancel", job_id)
            return job_id
    pytest.fail("no experiment job was ever submitted")


def test_study_through_slurm_equals_a_local_run(cluster, local_study, tmp_path):
    workdir = copy_workflow(tmp_path)
    command = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm",
               "--slurm-init-seconds-before-status-checks", "2",  # the profile's 10 s is for real clusters
               "--config", *TINY, "resources={gpu: 1}",
               "checkpoints={min_interval_s: 0}"]  # every epoch: the test cancels the job after its first
    deadline = time.monotonic() + 1500
    process = subprocess.Popen(command, cwd=workdir, env=cluster, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        cancelled = cancel_training_mid_way(process, workdir, cluster, deadline, seen)
        rest, _ = process.communicate(timeout=max(1, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(seen) + rest
    assert process.returncode == 0, output[-4000:]

    # Every job went through sbatch, an experiment's three as one group job; the cancelled one was
    # submitted again.
    job_ids = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S+/(?:rule_(\w+)|group_(experiment))", output)
    job_ids = [(job_id, rule or group) for job_id, rule, group in job_ids]
    names = [name for _, name in job_ids]
    assert names.count("experiment") == 3 and "build_report" in names  # 2 experiments + 1 resubmission
    assert not {"train_model", "evaluate_model"} & set(names)
    assert "convbench: local run" not in output  # no local GPU/memory limits throttle a cluster run
    assert "CANCELLED" in slurm(cluster, "scontrol", "show", "job", cancelled)

    # Experiment jobs (and the speed measurement, which times the models on the device they run on) asked
    # for a GPU and their training saw the device SLURM gave it; the others asked for none.
    for job_id, name in job_ids:
        request = slurm(cluster, "scontrol", "show", "job", job_id)
        assert ("gres:gpu:1" in request) == (name in ("experiment", "measure_cost")), (name, request)
    for arch in ("simple_cnn", "bn_cnn"):
        log = (workdir / f"results/logs/train/digits/{arch}/default/seed1.log").read_text()
        assert re.search(r"SLURM job \d+: CUDA_VISIBLE_DEVICES=0", log)

    # The cancelled training resumed from its checkpoint, and every result equals the local run's.
    assert read_json(workdir / "results/experiments/digits/bn_cnn/default/seed1/train_meta.json")["resumed_after_epoch"] >= 1
    assert not (workdir / "results" / "checkpoints").exists()  # no empty folders left once the run ended
    for arch in ("simple_cnn", "bn_cnn"):
        here = read_json(workdir / f"results/experiments/digits/{arch}/default/seed1/metrics.json")
        there = read_json(local_study / f"results/experiments/digits/{arch}/default/seed1/metrics.json")
        for key in ("accuracy", "loss", "confusion_matrix", "per_class", "flops_per_image", "parameters"):
            assert json.dumps(here[key]) == json.dumps(there[key]), f"{arch}: {key} differs from the local run"
    assert (workdir / "results" / "report.html").exists()

    # The jobs were given a (fake) GPU that TensorFlow cannot use: one line at the end says so and how to fix it.
    notice = re.search(r"convbench: given GPU\(s\) 0 \(CUDA_VISIBLE_DEVICES\) but TensorFlow \S+ sees none and "
                       r"ran on the CPU; .*tensorflow\[and-cuda\].*\((\d+) job\(s\), e\.g\. ", output)
    assert notice and int(notice.group(1)) >= 2, output[-3000:]  # the experiments' and the speed measurement's
    assert read_json(workdir / "results/experiments/digits/bn_cnn/default/seed1/train_meta.json")["environment"][
        "gpus_given"] == ["0"]


def test_failed_jobs_say_why_in_one_line_each_and_errors_that_recur_are_not_retried(cluster, tmp_path):
    """A test folder missing a class (bad data: fails once, though the profile retries twice) and an
    experiment group sbatch rejects (a partition the cluster does not have): Snakemake's group error
    says `message: None`; the end of the run must say why, in one line per failed job."""
    import canonical
    import yaml

    workdir = copy_workflow(tmp_path)
    canonical.image_folder(workdir / "train", per_class=12, size=20)
    canonical.image_folder(workdir / "test", classes=("cats", "dogs"), per_class=4, size=20, seed=3)
    study = {"datasets": ["digits", "split_folders"], "architectures": ["simple_cnn"], "training": {"epochs": 1},
             "custom_datasets": {"split_folders": {"format": "image_folder", "path": "train", "test_path": "test",
                                                   "image_size": 20}}}
    (workdir / "study.yaml").write_text(yaml.safe_dump(study))
    command = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "--configfile", "study.yaml",
               "--slurm-init-seconds-before-status-checks", "2", "--keep-going",
               "--set-resources", "train_model:slurm_partition=gpu"]
    started = time.monotonic()
    result = subprocess.run(command, cwd=workdir, env=cluster, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    print(f"failing study through SLURM: {time.monotonic() - started:.0f} s")
    assert result.returncode != 0

    # Bad data fails once: one SLURM job, no resubmission.
    submitted = re.findall(r"submitted with SLURM jobid \d+ \(log: \S+/rule_prepare_dataset/([a-z_]+)_\d", output)
    assert sorted(submitted) == ["digits", "split_folders"], output[-4000:]
    assert "Trying to restart job" not in output
    summary = output[output.index("convbench: 2 job(s) failed:"):].splitlines()[1:3]
    assert summary[0].startswith("  evaluate_model+train_model digits/simple_cnn/default/1: SLURM sbatch failed. The "
                                 "error message was 'sbatch: error: invalid partition specified: gpu")
    assert summary[1].startswith("  prepare_dataset split_folders/28x28x3: ") and "missing here: owls" in summary[1]
    assert output.count("Error in group experiment") == 1  # rejected once, not resubmitted
