"""A search's trial, trained in a child process (rule train_trial), so that a trial that fails becomes a
result of the search instead of a failed job that stops it: out of memory (a TensorFlow allocation, or the
kernel's OOM killer), a crash (a signal, an error inside TensorFlow or Keras for these settings), or a loss
that became NaN (convbench.train.training). Its files then say why (`failed`, one line) and the search goes
on without it (convbench.tune.search). What is not the trial's doing still fails the job, as any job's
error would: damaged data, a bad config, the file system, a missing package, the job being cancelled.

The job's own process stays small (no TensorFlow), so the child's memory is the job's: its peak is what
convbench.base.memory records. A failed trial's files are kept like any result: removing the experiment's
folder (results/experiments/<dataset>/<arch>/<trial>/) trains it again on the next run.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from ..base.atomic import atomic_path, write_json
from ..base.job_errors import one_line, recurs

log = logging.getLogger(__name__)

# Signals by which a job is stopped from outside (a cancelled or timed-out SLURM job, Ctrl-C): the job
# fails and may be retried; any other signal ends the trial (SIGKILL: the OOM killer, SIGSEGV: a crash).
STOPPED_FROM_OUTSIDE = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2}
# What a failed trial's history.csv holds: the columns, no epoch.
FAILED_HISTORY = "epoch,loss,val_loss,val_accuracy\n"


class TrialJobError(Exception):
    """The child failed for a reason that is not the trial's: the job fails with the child's one line."""

    def __init__(self, message, recurring):
        super().__init__(message)
        self.recurs = recurring


def is_trial_failure(error):
    """Whether an error in the child is the trial's own (its settings ran out of memory or crashed
    TensorFlow), rather than the job's: convbench's own errors name bad data or config, OSErrors the file
    system, ImportErrors the environment, an interruption the job's end."""
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        return True
    if isinstance(error, (OSError, ImportError, KeyboardInterrupt, SystemExit)):
        return False
    return not type(error).__module__.startswith("convbench")


def train_isolated(spec, history_path, meta_path, python=sys.executable, warm_start=None):
    """Train the trial `spec` describes (train_child's arguments) in a child process: forked from a warm
    process by `warm_start(spec_path, python)` when given (convbench.tune.warm_start.starter; it returns the
    exit code, or None when it could not), else a fresh one. Returns None when it trained (its outputs are
    written), else the failure's one line, written to its outputs as well. Raises TrialJobError when the
    failure is the job's, not the trial's."""
    with tempfile.TemporaryDirectory(prefix="convbench-trial-") as scratch:
        spec_path, result_path = Path(scratch) / "spec.json", Path(scratch) / "result.json"
        write_json(spec_path, {**spec, "history_path": str(history_path), "meta_path": str(meta_path),
                               "result_path": str(result_path)})
        returncode = warm_start(spec_path, python) if warm_start else None
        if returncode is None:
            returncode = subprocess.run([python, "-m", __name__, str(spec_path)], env=child_environment()).returncode
        if returncode == 0:
            return None
        reason = failure_reason(returncode, result_path)
    log.warning("trial %s failed: %s; the search goes on without it", spec["variant"], reason)
    record_failure(spec, reason, history_path, meta_path)
    return reason


def child_environment():
    """This job's environment, with the package importable (rule scripts put it on sys.path, not PYTHONPATH)."""
    package_parent = str(Path(__file__).resolve().parents[2])
    paths = [package_parent, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def failure_reason(returncode, result_path):
    """The trial's one-line reason; raises TrialJobError for a failure that is the job's."""
    if returncode < 0:
        stopped = signal.Signals(-returncode)
        if stopped in STOPPED_FROM_OUTSIDE:
            raise TrialJobError(f"the trial's training was stopped by {stopped.name}", recurring=False)
        hint = " (out of memory, most likely: the kernel's OOM killer)" if stopped == signal.SIGKILL else ""
        return f"killed by {stopped.name}{hint}"
    try:
        result = json.loads(Path(result_path).read_text())
    except (OSError, ValueError):
        return f"the training process ended with exit code {returncode} and no error of its own (see the log)"
    if not result["trial_failure"]:
        raise TrialJobError(result["message"], recurring=result["recurs"])
    return result["message"]


def record_failure(spec, reason, history_path, meta_path):
    """A failed trial's outputs: a history without epochs, and train_meta.json saying why."""
    with atomic_path(history_path) as tmp:
        Path(tmp).write_text(FAILED_HISTORY)
    overrides = spec["variant_overrides"]
    write_json(meta_path, {
        "architecture": spec["arch"], "dataset": spec["dataset"], "variant": spec["variant"], "seed": spec["seed"],
        "variant_overrides": {key: value for key, value in overrides.items() if key != "search"},
        "search": overrides.get("search"), "settings": spec["settings"], "failed": reason, "epochs_run": 0,
    })


def train_child(spec):
    """The child: the training train_model's script does, for a trial (no evaluation)."""
    # Before Keras is imported (it reads KERAS_HOME once): pretrained weights come from resources/.
    os.environ["KERAS_HOME"] = os.path.abspath(spec["keras_home"])
    import_keras_without_extras()
    from ..base.runtime import configure_tensorflow, set_precision

    settings = spec["settings"]
    strategy = configure_tensorflow(threads=spec["threads"], seed=spec["seed"], deterministic=settings["deterministic"])
    from ..data.prepared import fits_in_memory, load_prepared
    from ..models.study import architecture_from_params
    from ..train.training import train_experiment

    architecture = architecture_from_params(spec["arch"], custom=spec["custom"], transfer=spec["transfer"])
    _, precision_reason = set_precision(settings["precision"], architecture.bf16_keeps_accuracy)
    data = load_prepared(spec["data"], spec["manifest"])
    train_experiment(
        data, architecture, seed=spec["seed"], settings=settings, strategy=strategy, model_path=None,
        history_path=spec["history_path"], meta_path=spec["meta_path"], checkpoint_dir=spec["checkpoint_dir"],
        weights=spec["transfer"] and spec["transfer"]["weights"], variant=spec["variant"],
        variant_overrides=spec["variant_overrides"], precision_reason=precision_reason,
        tensorboard=spec["tensorboard"], checkpoint_interval=spec["checkpoint_interval"],
        in_memory=fits_in_memory(data, spec["mem_mb"]),
    )


# Packages Keras imports only for optional extras a trial never uses: scikit-learn for its scikit-learn
# wrappers (keras.src.wrappers), matplotlib for its image-gallery plots (keras.src.visualization).
KERAS_EXTRAS = ("sklearn", "matplotlib")


def import_keras_without_extras():
    """Import Keras without KERAS_EXTRAS: about 1 s of a trial's ~4.5 s start (benchmarks/trial_phases.py); a
    trial trains and never evaluates or plots. A None entry in sys.modules makes an import raise ImportError,
    which Keras catches for each; the entries are removed afterwards, so the packages stay importable."""
    blocked = [name for name in KERAS_EXTRAS if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None
    try:
        import keras  # noqa: F401
    finally:
        for name in blocked:
            del sys.modules[name]


def main(spec_path):
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    spec = json.loads(Path(spec_path).read_text())
    try:
        train_child(spec)
    except BaseException as error:
        traceback.print_exc()
        write_json(spec["result_path"], {"message": one_line(error), "recurs": recurs(error),
                                         "trial_failure": is_trial_failure(error)})
        sys.stderr.flush()
        os._exit(1)
    sys.stderr.flush()
    os._exit(0)  # TensorFlow's shutdown takes a second and changes nothing (workflow/scripts/_bootstrap.py)


if __name__ == "__main__":
    main(sys.argv[1])
