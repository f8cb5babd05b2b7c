"""A search's trial that fails (issue #42): trained in a child process (convbench.tune.trial), so that out of
memory or a crash becomes the trial's result, recorded with its one-line reason, while the job's own failures
(bad data, the file system, a cancelled job) still fail the job. The child here is a stand-in program that
fails as a real one would (a signal, an error record); the real training child runs in test_search_workflow."""

import json
import signal
import stat
import sys
import textwrap

import pytest
from convbench.base.job_errors import one_line, recurs
from convbench.tune.trial import FAILED_HISTORY, TrialJobError, is_trial_failure, train_isolated

SPEC = {"arch": "simple_cnn", "dataset": "digits", "variant": "trial002-r0", "seed": 7,
        "settings": {"batch_size": 512}, "variant_overrides": {"batch_size": 512, "search": {"trial": 2, "rung": 0}}}


def child(tmp_path, body):
    """A program run as `python -m convbench.tune.trial SPEC`: `body` is its Python code (spec: the spec)."""
    path = tmp_path / "fake-python"
    path.write_text(f"#!{sys.executable}\nimport json, os, signal, sys\nspec = json.load(open(sys.argv[3]))\n"
                    + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def outputs(tmp_path):
    return tmp_path / "exp" / "history.csv", tmp_path / "exp" / "train_meta.json"


@pytest.mark.parametrize("killed, words", [(signal.SIGKILL, "killed by SIGKILL (out of memory, most likely"),
                                           (signal.SIGSEGV, "killed by SIGSEGV")])
def test_a_trial_killed_by_the_oom_killer_or_a_crash_is_recorded_as_failed(tmp_path, killed, words):
    history, meta = outputs(tmp_path)
    reason = train_isolated(SPEC, history, meta, python=child(tmp_path, f"os.kill(os.getpid(), {int(killed)})"))
    assert reason.startswith(words)
    written = json.loads(meta.read_text())
    assert written["failed"] == reason and written["search"] == {"trial": 2, "rung": 0}
    assert written["variant_overrides"] == {"batch_size": 512} and written["epochs_run"] == 0
    assert history.read_text() == FAILED_HISTORY


def test_a_trial_whose_training_raised_its_own_error_is_recorded_with_that_line(tmp_path):
    history, meta = outputs(tmp_path)
    body = """
        json.dump({"message": "ResourceExhaustedError: OOM when allocating tensor with shape[512,32,26,26]",
                   "recurs": False, "trial_failure": True}, open(spec["result_path"], "w"))
        sys.exit(1)
    """
    reason = train_isolated(SPEC, history, meta, python=child(tmp_path, body))
    assert reason == "ResourceExhaustedError: OOM when allocating tensor with shape[512,32,26,26]"
    assert json.loads(meta.read_text())["failed"] == reason


@pytest.mark.parametrize("body, recurring", [
    ("os.kill(os.getpid(), signal.SIGTERM)", False),  # scancel, a SLURM time limit: retried
    ("""
     json.dump({"message": "digits' shard 0 does not match its manifest; rerun to prepare it again",
                "recurs": True, "trial_failure": False}, open(spec["result_path"], "w"))
     sys.exit(1)
     """, True),
])
def test_a_failure_that_is_not_the_trials_fails_the_job_and_writes_nothing(tmp_path, body, recurring):
    history, meta = outputs(tmp_path)
    with pytest.raises(TrialJobError) as raised:
        train_isolated(SPEC, history, meta, python=child(tmp_path, body))
    assert recurs(raised.value) is recurring and not history.exists() and not meta.exists()
    assert "convbench" not in one_line(raised.value).split(":")[0]  # the child's own line, not prefixed


class ResourceExhaustedError(Exception):  # what TensorFlow raises for an allocation that failed
    pass


def test_which_errors_are_the_trials():
    from convbench.data.prepared import DamagedData

    assert is_trial_failure(MemoryError()) and is_trial_failure(ResourceExhaustedError("OOM"))
    assert is_trial_failure(ValueError("Negative dimension size"))  # Keras refusing these settings
    assert not is_trial_failure(DamagedData("shard 0 does not match"))  # the data: every trial would meet it
    assert not is_trial_failure(FileNotFoundError("results/prepared/digits.json"))
    assert not is_trial_failure(ImportError("No module named 'tensorflow'"))
    assert not is_trial_failure(KeyboardInterrupt())


@pytest.mark.slow  # starts TensorFlow in a subprocess
def test_a_trials_child_trains_without_kerass_extras_which_stay_importable():
    """Keras imports scikit-learn and matplotlib only for its wrappers and plots; a trial's child skips them
    (about a second of its start)."""
    import subprocess

    code = textwrap.dedent("""
        import sys
        from convbench.tune.trial import KERAS_EXTRAS, import_keras_without_extras
        import_keras_without_extras()
        from convbench.base.runtime import configure_tensorflow
        from convbench.data.prepared import fits_in_memory, load_prepared
        from convbench.models.study import architecture_from_params
        from convbench.train.training import train_experiment
        print(*[name in sys.modules for name in KERAS_EXTRAS], "keras" in sys.modules)
        import matplotlib.pyplot, sklearn.metrics
        print(sklearn.metrics.accuracy_score([1, 0], [1, 1]))
    """)
    from convbench.tune.trial import child_environment

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env=child_environment())
    assert result.stdout.split() == ["False", "False", "True", "0.5"], result.stderr[-2000:]
