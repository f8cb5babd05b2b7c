"""Trials that start warm (issue #44 item 5, convbench.tune.warm_start): a trial forked from a warm process
trains bit for bit what a fresh process trains, its memory is its job's, it ends when its job dies, and the warm
process ends with the Snakemake run it served. The search through Snakemake, warm and fresh, is in
test_search_workflow (a trial killed out of memory)."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from convbench.base.memory import ChildrenPeak
from convbench.tune import warm_start
from convbench.tune.trial import train_isolated

PROJECT = Path(__file__).resolve().parent.parent
SETTINGS = {"epochs": 2, "batch_size": 64, "optimizer": "adam", "learning_rate": 1e-3, "deterministic": True,
            "augmentation": None, "precision": "float32"}


@pytest.fixture
def private_runtime_dir(monkeypatch):
    """Warm processes of this test only: their sockets live in a directory of its own (a short path: a socket's
    may not exceed 108 bytes)."""
    import shutil
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="cbw-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(directory))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, digits_raw):
    from convbench.data.datasets import prepare_dataset

    out = tmp_path_factory.mktemp("prepared")
    prepare_dataset("digits", [digits_raw], "28x28x1", out / "d", out / "d.json", split_seed=0, test_fraction=0.2,
                    validation_fraction=0.1, scaling="unit")
    return out / "d", out / "d.json"


def spec(prepared, tmp_path, *, epochs=2, keras_home=None):
    data, manifest = prepared
    return {"dataset": "digits", "arch": "simple_cnn", "variant": "trial001-r0", "seed": 7, "threads": 2,
            "mem_mb": 4000, "data": str(data), "manifest": str(manifest),
            "keras_home": str(keras_home or tmp_path / "keras"),
            "settings": {**SETTINGS, "epochs": epochs}, "variant_overrides": {"search": {"trial": 1, "rung": 0}},
            "custom": None, "transfer": None, "checkpoint_dir": str(tmp_path / "checkpoints"), "tensorboard": None,
            "checkpoint_interval": 10}


# --- the unit tier: what decides, and what is sent


def test_auto_starts_warm_on_linux_outside_slurm_for_cpu_trials(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert warm_start.wanted("auto", {"gpu": 0}) == (sys.platform == "linux")
    assert not warm_start.wanted("auto", {"gpu": 1})
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert not warm_start.wanted("auto", {"gpu": 0})
    assert warm_start.wanted(True, {"gpu": 1}) and not warm_start.wanted(False, {})


def test_a_warm_process_serves_one_environment_and_one_version_of_the_code(tmp_path, private_runtime_dir, monkeypatch):
    address = warm_start.server_address(tmp_path / "keras")
    assert address.parent.parent == private_runtime_dir and len(str(address)) < 100  # AF_UNIX's limit is 108
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/" + "long" * 30)  # too long: the next place
    assert len(str(warm_start.server_address(tmp_path / "keras"))) < 100
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(private_runtime_dir))
    assert warm_start.server_address(tmp_path / "keras") == address
    assert warm_start.server_address(tmp_path / "other-keras") != address
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # read when TensorFlow is imported
    assert warm_start.server_address(tmp_path / "keras") != address
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    monkeypatch.setenv("CONVBENCH_UNRELATED", "1")
    assert warm_start.server_address(tmp_path / "keras") == address


def test_a_message_and_its_descriptors_arrive_whole():
    import socket

    left, right = socket.socketpair()
    with left, right, open(os.devnull, "w") as sink:
        message = {"env": {f"VARIABLE_{n}": "x" * 100 for n in range(2000)}}  # larger than one read
        sender = threading.Thread(target=warm_start.send_message, args=(left, message, [sink.fileno()] * 2))
        sender.start()
        received, fds = warm_start.receive_message(right, fds=2)
        sender.join()
        assert received == message and len(fds) == 2
        for fd in fds:
            os.close(fd)
        left.close()
        assert warm_start.receive_message(right) is None


def test_the_run_is_the_outermost_snakemake_ancestor():
    program = textwrap.dedent(f"""
        import subprocess, sys
        # a stand-in for snakemake: its command line names it
        code = "import sys; sys.path.insert(0, {str(PROJECT / 'workflow')!r}); "
        code += "from convbench.tune.warm_start import snakemake_run; print(snakemake_run())"
        print(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
    """)
    outer = subprocess.Popen([sys.executable, "-c", program, "snakemake"], stdout=subprocess.PIPE, text=True)
    printed = outer.communicate()[0]
    assert printed.startswith(f"({outer.pid}, ")


def test_a_process_a_job_adopts_counts_as_its_child():
    # started through a shell that exits at once, so it is not this process's descendant
    shell = subprocess.run(["sh", "-c", f"{sys.executable} -c 'import time; x = bytearray(300 * 2**20); "
                                        "time.sleep(30)' >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    pid = int(shell.stdout)
    try:
        time.sleep(1.0)
        peak = ChildrenPeak(interval=3600)
        peak.sample()
        assert peak.peak_kb < 100 * 1024
        peak.adopt(pid)
        peak.sample()
        assert peak.peak_kb > 300 * 1024
    finally:
        os.kill(pid, signal.SIGKILL)


# --- TensorFlow in warm and fresh processes


@pytest.mark.slow
def test_a_trial_forked_warm_trains_what_a_fresh_process_trains(prepared, tmp_path, private_runtime_dir):
    outputs = {}
    for start, idle in (("fresh", None), ("warm", 30), ("warm again", 30)):
        out = tmp_path / start
        trial = spec(prepared, out, keras_home=tmp_path / "keras")
        starter = idle and warm_start.starter(True, idle, {}, trial["keras_home"])
        assert train_isolated(trial, out / "history.csv", out / "meta.json", warm_start=starter) is None
        meta = json.loads((out / "meta.json").read_text())
        outputs[start] = (meta["weights_sha256"] if "weights_sha256" in meta else None,
                          [line.split(",")[:4] for line in (out / "history.csv").read_text().splitlines()])
    assert outputs["warm"] == outputs["fresh"] == outputs["warm again"]
    (address,) = private_runtime_dir.glob("*/*.sock")  # one warm process served both
    assert address.exists()


@pytest.mark.slow
def test_a_trial_ends_with_its_job_and_the_warm_process_with_its_run(prepared, tmp_path, private_runtime_dir):
    job = textwrap.dedent(f"""
        import json, logging, sys
        sys.path.insert(0, {str(PROJECT / 'workflow')!r})
        logging.basicConfig(stream=sys.stderr, level=logging.INFO)
        from convbench.tune.trial import train_isolated
        from convbench.tune.warm_start import starter
        spec = json.loads(sys.argv[1])
        train_isolated(spec, {str(tmp_path / 'history.csv')!r}, {str(tmp_path / 'meta.json')!r},
                       warm_start=starter(True, 600, {{}}, spec["keras_home"]))
    """)
    # the job's parent names snakemake, as a Snakemake run's jobs' do
    run = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[2:])", "snakemake",
                            sys.executable, "-c", job, json.dumps(spec(prepared, tmp_path, epochs=500))],
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    child, printed = None, []
    for line in run.stderr:
        printed.append(line)
        started = re.search(r"trial training in process (\d+), forked from warm process (\d+)", line)
        if started:
            child, server = map(int, started.groups())
            break
    assert child, "the trial never started: " + "".join(printed[-20:])
    time.sleep(2)
    assert Path(f"/proc/{child}").exists()
    os.killpg(run.pid, signal.SIGKILL)  # the run and its job, as a killed Snakemake
    run.wait()
    assert gone(child, within_s=10), "the trial trained on after its job was killed"
    assert gone(server, within_s=10), "the warm process outlived the run it served"
    assert not list(private_runtime_dir.glob("*/*.sock")) and not (tmp_path / "meta.json").exists()


def gone(pid, within_s):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return True
        if state == "Z":  # ended, not yet reaped by its parent
            return True
        time.sleep(0.1)
    return False
