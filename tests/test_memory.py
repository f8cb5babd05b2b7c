"""Each job measures its peak memory, and the next run asks for it (convbench.base.memory)."""

import json
import math
import os
import re
import subprocess
import sys
import types

import pytest
from conftest import PROJECT, run_snakemake
from convbench.base import job_errors, memory

JOB = {"dataset": "digits", "arch": "simple_cnn", "variant": "default", "seed": "1"}
SCRIPTS = PROJECT / "workflow" / "scripts"


def job_process(tmp_path, body, declared_mb):
    """A rule script's process (workflow/scripts/_bootstrap.py's start ... body); its return code."""
    program = f"""
import os, sys, types
os.chdir({str(tmp_path)!r})
sys.path.insert(0, {str(SCRIPTS)!r})
import _bootstrap
from snakemake.iocontainers import Namedlist
resources = Namedlist(fromdict={{"mem_mb": {declared_mb}, "_cores": 1}})
wildcards = Namedlist(fromdict={JOB!r})
sm = types.SimpleNamespace(scriptdir={str(SCRIPTS)!r}, log=[{str(tmp_path / "job.log")!r}], rule="train_model",
                           wildcards=wildcards, resources=resources)
_bootstrap.start(sm)
{body}
"""
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120).returncode


@pytest.mark.parametrize("ending", ["_bootstrap.finish()", "raise ValueError('bad data')", "pass"])
def test_a_job_records_its_peak_however_it_ends(tmp_path, ending):
    """finish() (TensorFlow jobs, os._exit), an uncaught error, a plain end: all leave the peak."""
    body = f"ballast = bytearray(300 * 2**20)\nballast[::4096] = b'x' * len(ballast[::4096])\n{ending}"
    job_process(tmp_path, body, declared_mb=200)
    directory = tmp_path / memory.MEMORY_DIR
    peak = memory.measured_peak("train_model", JOB, directory)
    assert 300 < peak < 600, peak
    assert re.search(rf"peak memory {peak} MB \(declared mem_mb: 200\)", (tmp_path / "job.log").read_text())
    notices = job_errors.notices(tmp_path / job_errors.ERRORS_DIR)
    assert len(notices) == 1 and "train_model jobs peaked above the memory they declared" in notices[0]


def test_a_job_within_its_memory_leaves_no_notice(tmp_path):
    job_process(tmp_path, "_bootstrap.finish()", declared_mb=4000)
    assert memory.measured_peak("train_model", JOB, tmp_path / memory.MEMORY_DIR) < 4000
    assert job_errors.notices(tmp_path / job_errors.ERRORS_DIR) == []


def wildcards_of(job):
    return types.SimpleNamespace(items=lambda: job.items())


def test_the_request_is_the_configured_memory_until_a_run_measured_more(tmp_path, capsys):
    ask = memory.asked_mb("train_model", 1000, directory=tmp_path)
    assert ask(wildcards_of(JOB), attempt=1) == 1000  # nothing measured yet
    assert ask(wildcards_of(JOB), attempt=2) == 2000  # a retry after the cluster killed it out of memory
    (tmp_path / "x").mkdir()
    path = job_errors.job_record_path("train_model", JOB, tmp_path, "memory")
    path.write_text(json.dumps({"peak_mb": 600}))
    assert ask(wildcards_of(JOB), attempt=1) == 1000  # 1.25 x 600 fits in what is configured
    path.write_text(json.dumps({"peak_mb": 1876}))
    assert ask(wildcards_of(JOB), attempt=1) == 2345
    assert ask(wildcards_of({**JOB, "seed": "2"}), attempt=1) == 1000  # another job: its own peak
    said = capsys.readouterr().err
    assert said.count("convbench: train_model asks for more than its configured 1000 MB") == 1
    assert "2345 MB, 1.25 x the 1876 MB it peaked at on an earlier run" in said
    path.write_text("{not json")
    assert ask(wildcards_of(JOB), attempt=1) == 1000  # a damaged record is no measurement


def test_before_any_measurement_a_job_asks_for_its_models_need_and_room_for_data(tmp_path, capsys):
    ask = memory.asked_mb("train_model", 4000, estimate=lambda wildcards: 6666, directory=tmp_path)
    assert ask(wildcards_of(JOB), attempt=1) == 8888  # 6666 / (1 - DATA_SHARE)
    assert "e.g. digits/simple_cnn/default/1 8888 MB, the 6666 MB its model needs to train" in capsys.readouterr().err
    assert memory.asked_mb("x", 4000, estimate=lambda wildcards: None, directory=tmp_path)(wildcards_of(JOB), 1) == 4000
    (tmp_path / "x").mkdir()
    job_errors.job_record_path("train_model", JOB, tmp_path, "memory").write_text(json.dumps({"peak_mb": 5838}))
    assert ask(wildcards_of(JOB), attempt=1) == 7298  # measured beats estimated


def test_a_peak_measured_under_another_model_estimate_is_stale(tmp_path, capsys):
    """A 2,250 MB peak measured at batch 64 won against a 30,000 MB estimate at batch 4096."""
    record = job_errors.job_record_path("train_model", JOB, tmp_path, "memory")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"peak_mb": 2250, "model_mb": 1500}))
    ask = memory.asked_mb("train_model", 1500, estimate=lambda wildcards: 22500, directory=tmp_path)
    assert ask(wildcards_of(JOB), attempt=1) == 30000  # the estimate: the batch size changed
    same = memory.asked_mb("train_model", 1500, estimate=lambda wildcards: 1500, directory=tmp_path)
    assert same(wildcards_of(JOB), attempt=1) == 2813  # 1.25 x the peak measured under this estimate


def test_a_request_is_capped_at_the_stated_maximum_with_one_line(tmp_path, capsys, monkeypatch):
    """One outlier peak asked for 287,500 MB: sbatch refused it, as recurring, and nothing measured it again."""
    record = job_errors.job_record_path("train_model", JOB, tmp_path, "memory")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"peak_mb": 230000}))
    monkeypatch.setitem(memory.LIMITS, "max_mb", lambda: 64000)  # resolved when first asked
    ask = memory.asked_mb("train_model", 4000, directory=tmp_path)
    assert ask(wildcards_of(JOB), attempt=1) == 64000 and ask(wildcards_of(JOB), attempt=2) == 64000
    assert capsys.readouterr().err.count("would ask for 287500 MB; capped at resources.max_mem_mb 64000 MB") == 1


def test_auto_is_this_machines_memory_locally_and_the_largest_slurm_node_on_a_cluster(tmp_path, monkeypatch):
    fake = tmp_path / "sinfo"
    fake.write_text("#!/bin/sh\nprintf '192000\\n257000+\\n'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert memory.memory_limit("auto", on_cluster=True) == 257000
    assert memory.memory_limit("auto", on_cluster=False) == memory.machine_mb() > 1000
    assert memory.memory_limit(50000, on_cluster=True) == 50000
    fake.unlink()
    assert memory.memory_limit("auto", on_cluster=True) is None  # no sinfo: no cap


def test_a_job_stopped_by_sigterm_records_its_peak(tmp_path):
    """A SLURM time limit or scancel sends SIGTERM: the job recorded nothing."""
    body = "ballast = bytearray(300 * 2**20)\nballast[::4096] = b'x' * len(ballast[::4096])\nimport signal\nos.kill(os.getpid(), signal.SIGTERM)\nimport time; time.sleep(30)"
    assert job_process(tmp_path, body, declared_mb=4000) == -15  # it still ends by SIGTERM
    assert 300 < memory.measured_peak("train_model", JOB, tmp_path / memory.MEMORY_DIR) < 600


def test_a_childs_memory_is_counted_once(tmp_path):
    """getrusage counted the parent's pages in a child forked from it: 632 MB recorded as 1,265."""
    body = """ballast = bytearray(400 * 2**20)
ballast[::4096] = b'x' * len(ballast[::4096])
import subprocess
subprocess.run([sys.executable, "-c", "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(2)"], check=True)
"""
    job_process(tmp_path, body, declared_mb=4000)
    peak = memory.measured_peak("train_model", JOB, tmp_path / memory.MEMORY_DIR)
    assert 600 < peak < 800, peak  # 400 + 200 and the interpreters, not 400 + (400 + 200)


def test_every_architecture_has_its_footprint_and_the_stored_ones_are_the_models():
    """footprints.json is regenerated when a model changes (python -m convbench.models.footprints)."""
    import keras
    from convbench.models.architectures import ARCHITECTURES
    from convbench.models.footprints import count_footprint, footprint_key, stored_footprints
    from convbench.models.transfer import BASES, transfer_architectures

    stored = stored_footprints()
    transfer = transfer_architectures({f"t_{base}": {"base": base, "weights": None} for base in BASES})
    assert {footprint_key(arch) for arch in [*ARCHITECTURES.values(), *transfer.values()]} == set(stored)
    for architecture, side in ((ARCHITECTURES["bn_cnn"], 32), (transfer["t_mobilenetv2"], 224)):
        keras.backend.clear_session()
        counted = count_footprint(architecture.build((side, side, 3), 10))
        assert list(counted) == stored[footprint_key(architecture)][str(side)], architecture.name


def test_the_estimated_need_follows_batch_and_input_size_and_stays_near_what_was_measured():
    from convbench.models.architectures import ARCHITECTURES
    from convbench.models.footprints import training_need_mb
    from convbench.models.transfer import transfer_architectures

    mobilenet = transfer_architectures({"t": {"base": "mobilenetv2", "weights": None}})["t"]
    # measured peaks on the machine of BENCHMARKS.md (memory): 1,322 MB, 5,873 MB
    assert 1.0 <= training_need_mb(ARCHITECTURES["simple_cnn"], 28, 128) / 1322 <= 1.1
    assert 1.0 <= training_need_mb(mobilenet, 224, 128) / 5873 <= 1.3
    assert training_need_mb(mobilenet, 224, 64) < training_need_mb(mobilenet, 224, 128)
    assert training_need_mb(mobilenet, 96, 128) < training_need_mb(mobilenet, 224, 128)
    custom = ARCHITECTURES["simple_cnn"].__class__("mine", None, 28)
    assert training_need_mb(custom, 28, 128) is None


@pytest.mark.integration
def test_every_job_of_a_study_peaks_within_what_it_declares_and_the_next_run_asks_for_its_peak(local_study):
    records = [json.loads(path.read_text()) for path in (local_study / memory.MEMORY_DIR).glob("*.json")]
    rules = {record["rule"] for record in records}
    assert {"prepare_dataset", "train_model", "evaluate_model", "summarize", "build_report"} <= rules, rules
    over = [record for record in records if record["peak_mb"] > record["declared_mb"]]
    assert not over, over
    peaks = {record["job"]: record["peak_mb"] for record in records if record["rule"] == "train_model"}
    planned = run_snakemake(local_study, "-n", "--forcerun", "train_model", "--cores", "2",
                            config=["resources={train_mem_mb: 1500}"])
    jobs = re.findall(r"rule train_model:.*?wildcards: dataset=(\w+), arch=(\w+), variant=(\w+), seed=(\d+)"
                      r".*?mem_mb=(\d+)", planned, flags=re.S)
    asked = {"/".join(job[:4]): int(job[4]) for job in jobs}
    assert asked.keys() == peaks.keys(), planned[-3000:]
    assert all(asked[job] == max(1500, math.ceil(1.25 * peaks[job])) for job in peaks), (asked, peaks)
    if any(1.25 * peak > 1500 for peak in peaks.values()):
        assert "convbench: train_model asks for more than its configured 1500 MB" in planned



def test_a_child_forked_but_not_yet_execed_is_its_parents_pages_not_counted():
    """Between fork and exec a child's VmHWM is its parent's copy-on-write pages: a sample there counted
    the parent twice (851 MB recorded for 400 + 200)."""
    import time

    forked = os.fork()
    if forked == 0:  # the copy: never execs
        time.sleep(3)
        os._exit(0)
    try:
        watcher = memory.ChildrenPeak(interval=3600)
        watcher.sample()
        assert not watcher.sampled and watcher.peak_kb == 0
        execed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
        time.sleep(1)
        watcher.sample()
        assert watcher.sampled and 0 < watcher.peak_kb < 200 * 1024  # the new interpreter alone
        execed.kill()
        execed.wait()
    finally:
        os.waitpid(forked, 0)
