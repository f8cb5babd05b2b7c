"""What a cluster user sees when jobs fail or cannot use their GPU (convbench.base.job_errors,
convbench.base.snakemake_hooks), and that asking for other resources rebuilds nothing. The same
runs through a real SLURM cluster are in tests/test_slurm.py."""

import errno
import types

import pytest
from conftest import planned_jobs, run_snakemake
from convbench.base import job_errors, snakemake_hooks
from convbench.base.atomic import DiskFull
from convbench.base.runtime import unusable_gpus_message
from convbench.data.fetch import DownloadError
from convbench.data.formats import DatasetError
from convbench.train.training import TrainingDiverged

EXPERIMENT = {"dataset": "digits", "arch": "bn_cnn", "variant": "default", "seed": "1"}
CANCELLED = ("SLURM-job '17' failed, SLURM status is: 'CANCELLED'. Detailed failure reason unavailable "
             "(status command is not 'sacct').")
REJECTED = ("SLURM sbatch failed. The error message was 'sbatch: error: invalid partition specified: gpu'.\n"
            "    sbatch call:\n        sbatch --job-name x --partition gpu ...\n")


def test_snakemakes_internals_the_hooks_wrap_are_all_there():
    """A Snakemake release that moves one of them fails here, not silently on a cluster."""
    assert snakemake_hooks.install() == ["Job.log_error", "GroupJob.log_error", "JobScheduler._handle_error",
                                         "RemoteExecutor.sleep"]
    assert snakemake_hooks.install() == snakemake_hooks.install()  # installing twice wraps once


@pytest.mark.parametrize("error, recurs", [
    (DatasetError("photos/test: missing here: owls"), True), (ValueError("bad"), True), (KeyError("x"), True),
    (ModuleNotFoundError("No module named 'optuna'"), True), (FileNotFoundError("x"), True),
    (TrainingDiverged("nan"), True), (DiskFull("/x"), True),
    (OSError(errno.EIO, "Input/output error"), False), (MemoryError(), False), (DownloadError("503"), False),
    (RuntimeError("CUDA_ERROR_LAUNCH_FAILED"), False),
])
def test_only_errors_a_retry_would_meet_again_are_marked_so(error, recurs):
    assert job_errors.recurs(error) is recurs


def test_a_group_cancelled_or_rejected_as_a_whole_is_one_line_with_the_executors_reason(tmp_path):
    group = [("train_model", EXPERIMENT), ("evaluate_model", EXPERIMENT)]
    for rule, wildcards in group:
        job_errors.record_executor_error(rule, wildcards, REJECTED, [f"results/logs/{rule}.log"], group, tmp_path)
    lines = job_errors.summary(tmp_path)
    assert len(lines) == 1 and lines[0].startswith(
        "evaluate_model+train_model digits/bn_cnn/default/1: SLURM sbatch failed. The error message was "
        "'sbatch: error: invalid partition specified: gpu'.")
    assert job_errors.error_recurs("train_model", EXPERIMENT, tmp_path)  # sbatch refuses the same request again

    # The job's own error, when it got to record one, says more than SLURM's state: it wins.
    job_errors.record("train_model", EXPERIMENT, "results/logs/train/x.log", DatasetError("shard damaged"), tmp_path)
    assert job_errors.summary(tmp_path) == ["train_model digits/bn_cnn/default/1: shard damaged "
                                            "(traceback: results/logs/train/x.log)"]


def test_a_cancelled_job_is_retried_and_its_retry_takes_the_reason_back(tmp_path, monkeypatch):
    monkeypatch.setattr(job_errors, "_this_job", {})  # started() below sets it for this test only
    job_errors.record_executor_error("build_report", {}, CANCELLED, [".snakemake/slurm_logs/17.log"], (), tmp_path)
    assert job_errors.summary(tmp_path) == [f"build_report: {CANCELLED} (log: .snakemake/slurm_logs/17.log)"]
    assert not job_errors.error_recurs("build_report", {}, tmp_path)
    job_errors.started("build_report", {}, tmp_path)
    assert job_errors.summary(tmp_path) == []


def test_a_job_killed_without_a_word_still_gets_its_line(tmp_path):
    job_errors.record_executor_error("train_model", EXPERIMENT, None, ["results/logs/train/x.log"], (), tmp_path)
    assert job_errors.summary(tmp_path) == [
        "train_model digits/bn_cnn/default/1: the job ended without an error of its own (killed? out of memory?) "
        "(log: results/logs/train/x.log)"]


def fake_job(rule, wildcards, restart_times=2):
    job = types.SimpleNamespace(rule=types.SimpleNamespace(name=rule), wildcards_dict=wildcards, attempt=1,
                                restart_times=restart_times, log=[f"results/logs/{rule}.log"])
    return job


def test_the_scheduler_retries_a_killed_job_but_not_one_whose_error_recurs(tmp_path, monkeypatch):
    monkeypatch.setattr(job_errors, "ERRORS_DIR", str(tmp_path))
    retried = []

    def handle_error(scheduler, job):  # Snakemake's own test (scheduling/job_scheduler.py)
        retried.append(job.restart_times > job.attempt - 1)

    hooked = snakemake_hooks._no_retry_of_recurring_errors(handle_error)
    killed = fake_job("train_model", EXPERIMENT)
    hooked(None, killed)
    bad_data = fake_job("prepare_dataset", {"dataset": "photos", "spec": "64x64x3"})
    job_errors.record("prepare_dataset", bad_data.wildcards_dict, "x.log", DatasetError("missing here: owls"), tmp_path)
    hooked(None, bad_data)
    group = types.SimpleNamespace(jobs=[fake_job("train_model", EXPERIMENT), fake_job("evaluate_model", EXPERIMENT)],
                                  attempt=1, restart_times=2)
    job_errors.record("evaluate_model", EXPERIMENT, "x.log", ImportError("No module named 'sklearn'"), tmp_path)
    hooked(None, group)
    assert retried == [True, False, False]


def test_a_groups_log_error_keeps_the_executors_message(tmp_path, monkeypatch):
    monkeypatch.setattr(job_errors, "ERRORS_DIR", str(tmp_path))
    shown = []
    hooked = snakemake_hooks._keep_reason(lambda self, msg=None, aux_logs=None, **kwargs: shown.append(msg),
                                          grouped=True)
    group = types.SimpleNamespace(jobs=[fake_job("train_model", EXPERIMENT), fake_job("evaluate_model", EXPERIMENT)])
    hooked(group, CANCELLED, aux_logs=[".snakemake/slurm_logs/group_experiment/17.log"])
    assert shown == [CANCELLED]  # Snakemake's own report goes on as before
    (line,) = job_errors.summary(tmp_path)
    assert line == (f"evaluate_model+train_model digits/bn_cnn/default/1: {CANCELLED} (log: .snakemake/slurm_logs/"
                    "group_experiment/17.log, results/logs/evaluate_model.log, results/logs/train_model.log)")


def test_a_job_given_a_gpu_tensorflow_cannot_see_says_so_and_names_the_fix():
    assert unusable_gpus_message(["0"], 1, "2.21.0", False) is None
    assert unusable_gpus_message([], 0, "2.21.0", False) is None
    cpu_build = unusable_gpus_message(["0"], 0, "2.21.0", False)
    assert cpu_build.startswith("given GPU(s) 0 (CUDA_VISIBLE_DEVICES) but TensorFlow 2.21.0 sees none and ran on "
                                "the CPU; it is a CPU-only build: install `tensorflow[and-cuda]`")
    assert "resources.gpu: 0" in cpu_build
    assert "nvidia-smi" in unusable_gpus_message(["0", "1"], 0, "2.21.0", True)


def test_notices_are_one_line_per_message_however_many_jobs(tmp_path, monkeypatch):
    monkeypatch.setattr(job_errors, "_this_job", {})
    for seed in ("1", "2"):
        job_errors.notice("train_model", {**EXPERIMENT, "seed": seed}, "given GPU(s) 0 but ...", tmp_path)
    assert job_errors.notices(tmp_path) == [
        "given GPU(s) 0 but ... (2 job(s), e.g. train_model digits/bn_cnn/default/1)"]
    job_errors.notice_this_job("outside a job: nothing", tmp_path)
    assert len(job_errors.notices(tmp_path)) == 1


@pytest.mark.integration
def test_asking_for_other_resources_reruns_nothing_not_even_the_report(local_study):
    planned = run_snakemake(local_study, "-n", "--cores", "2",
                            config=["resources={gpu: 0, train_mem_mb: 3000}",  # threads would change measured speeds
                                    "checkpoints={min_interval_s: 5}"])
    assert planned_jobs(planned) == {}, planned[-2000:]
