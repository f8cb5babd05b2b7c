"""GPU slots: concurrent jobs get distinct devices, never more than there are, and a crash frees them."""

import os
import signal
import subprocess
import sys

import pytest
from convbench.base.devices import claim_gpus

CLAIM = """
import sys, time
from convbench.base.devices import claim_gpus
ids = claim_gpus(int(sys.argv[1]), sys.argv[2], poll=0.05)
print(time.time(), ",".join(ids), flush=True)
time.sleep(float(sys.argv[3]))
print(time.time(), flush=True)
"""


def job(count, lock_dir, hold, gpus=2):
    env = {**os.environ, "CONVBENCH_GPU_COUNT": str(gpus)}
    env.pop("SLURM_JOB_ID", None)
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(count), str(lock_dir), str(hold)], env=env,
                            stdout=subprocess.PIPE, text=True)


def test_concurrent_jobs_share_two_gpus_without_collisions(tmp_path):
    jobs = [job(1, tmp_path, 1.0) for _ in range(4)]
    spans = []
    for process in jobs:
        out, _ = process.communicate(timeout=60)
        (start, devices), (end,) = (line.split() for line in out.splitlines())
        spans.append((float(start), float(end), devices))
    assert sorted({devices for *_, devices in spans}) == ["0", "1"]
    for start, _, _ in spans:  # the jobs holding a GPU at each moment a job starts
        holding = [other for other in spans if other[0] <= start < other[1]]
        assert len(holding) <= 2, "more jobs on the GPUs at once than there are GPUs"
        assert len({other[2] for other in holding}) == len(holding), "two jobs on one GPU"


def test_a_killed_job_frees_its_slots(tmp_path):
    holder = job(2, tmp_path, 60)
    holder.stdout.readline()  # it holds both GPUs now
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    waiter = job(2, tmp_path, 0)
    out, _ = waiter.communicate(timeout=20)
    assert out.split()[1] == "0,1"


def test_cpu_jobs_see_no_gpu_and_oversized_requests_fail(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVBENCH_GPU_COUNT", "2")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert claim_gpus(0, tmp_path) == [] and os.environ["CUDA_VISIBLE_DEVICES"] == ""
    with pytest.raises(RuntimeError, match="asks for 3 GPU.*has 2"):
        claim_gpus(3, tmp_path)


def test_the_schedulers_choice_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert claim_gpus(1, tmp_path) == ["3"]
    assert claim_gpus(0, tmp_path) == ["3"] and os.environ["CUDA_VISIBLE_DEVICES"] == "3"  # e.g. --gres


@pytest.mark.slow  # starts Snakemake in a subprocess
@pytest.mark.parametrize("machine_gpus, config, per_job", [("2", [], 1), ("0", [], 0), ("2", ["resources={gpu: 0}"], 0),
                                                            ("4", ["resources={gpu: 2}"], 2), ("1", ["resources={gpu: 2}"], 1)])
def test_gpu_auto_takes_one_gpu_per_job_where_the_machine_has_gpus(tmp_path, machine_gpus, config, per_job):
    from conftest import copy_workflow

    copy_workflow(tmp_path)
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", *(["--config", *config] if config else [])],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "CONVBENCH_GPU_COUNT": machine_gpus})
    assert result.returncode == 0, result.stderr[-2000:]
    blocks = result.stdout.split("\n\n")
    for rule in ("train_model", "evaluate_model"):
        jobs = [block for block in blocks if f"rule {rule}:" in block]
        assert jobs and all(f"gpu={per_job}," in block for block in jobs)
    assert f"convbench: local run: jobs get at most gpu={machine_gpus}, mem_mb=" in result.stderr
    if config == ["resources={gpu: 2}"] and machine_gpus == "1":
        assert "asks 2 GPU(s) per job, this machine has 1; jobs get 1" in result.stderr


def test_local_limits_are_the_machines_gpus_and_most_of_its_memory(monkeypatch):
    from convbench.base.devices import local_resource_limits

    monkeypatch.setenv("CONVBENCH_GPU_COUNT", "3")
    limits = local_resource_limits()
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    assert limits["gpu"] == 3 and 0.85 * total_mb < limits["mem_mb"] < total_mb


@pytest.mark.slow  # starts Snakemake in a subprocess
def test_a_dry_run_for_slurm_shows_what_slurm_will_get_not_the_login_nodes_limits(tmp_path):
    """In a dry run Snakemake swaps every executor for its local `dryrun` one: the login node's
    missing GPUs and its memory must still not lower what the jobs ask SLURM for."""
    from conftest import copy_workflow

    copy_workflow(tmp_path)
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/slurm",
                             "--config", "resources={gpu: 1}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "CONVBENCH_GPU_COUNT": "0"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "convbench: local run" not in result.stderr and "this machine has" not in result.stderr
    blocks = result.stdout.split("\n\n")
    for rule in ("train_model", "evaluate_model"):
        jobs = [block for block in blocks if f"rule {rule}:" in block]
        assert jobs and all("gpu=1" in block for block in jobs), jobs
