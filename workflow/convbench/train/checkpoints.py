"""Resuming a killed training run exactly: the per-epoch checkpoint, the callbacks whose counters it
carries (ReduceLROnPlateau, EarlyStopping) and restoring all of it. Used by convbench.train.training (its
EpochTimer gives the checkpoint each epoch's seconds)."""

import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ..base.atomic import atomic_path, read_json, write_json
from ..base.job_errors import notice_this_job
from ..models.saving import load_model, save_model
from .tensorboard_log import current_learning_rate

log = logging.getLogger(__name__)


class ResumableCallback:
    """A Keras callback whose counters survive a restart: `state()` goes into the checkpoint,
    `resume_from` is applied after Keras resets the callback at the start of fit."""

    STATE = ()
    resume_from = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for key, value in (self.resume_from or {}).items():
            setattr(self, key, value)

    def state(self):
        return {key: getattr(self, key) for key in self.STATE}


class ResumablePlateau(ResumableCallback, keras.callbacks.ReduceLROnPlateau):
    STATE = ("wait", "best", "cooldown_counter")


class ResumableEarlyStopping(ResumableCallback, keras.callbacks.EarlyStopping):
    """EarlyStopping; its best weights are saved beside the checkpoint, its counters in state.json."""

    STATE = ("wait", "best", "best_epoch", "stopped_epoch")


def make_callbacks(settings, resume):
    """ReduceLROnPlateau and EarlyStopping as the settings ask, resumed from a checkpoint's state."""
    callbacks = {}
    if settings.get("schedule") == "plateau":
        plateau = settings["plateau"]
        callbacks["plateau"] = ResumablePlateau(monitor="val_loss", factor=plateau["factor"],
                                                patience=plateau["patience"], min_lr=plateau["min_learning_rate"])
    stopping = settings.get("early_stopping", {})
    if stopping.get("enabled"):
        callbacks["early_stopping"] = ResumableEarlyStopping(
            monitor="val_loss", patience=stopping["patience"], restore_best_weights=stopping["restore_best_weights"])
    for name, callback in callbacks.items():
        callback.resume_from = resume.get(name)
    return callbacks


class CheckpointTakenOver(RuntimeError):
    """A later attempt of the same job (a resubmission) now owns the checkpoint: this one stops."""


class EpochCheckpoint(keras.callbacks.Callback):
    """After an epoch, saves what a resumed run needs: model and optimizer, the dropout
    generators' states (Keras does not restore them on load) and the history so far. Every epoch
    by default; with `min_interval` only epochs ending that many seconds after the last save (and
    the one early stopping ends): sub-second epochs would otherwise spend more time saving than
    a kill could lose, and write a file per second to a cluster's shared file system.

    The directory lies outside the rule's outputs, which Snakemake deletes when a job fails.
    Safe with two writers (a job orphaned on an unreachable node still training while SLURM or
    Snakemake runs it again elsewhere): each attempt writes only into its own sub-folder, state.json
    (renamed into place) names one attempt's complete files, and the attempt that started last
    owns the checkpoint: an older one stops at its next epoch instead of writing.
    """

    def __init__(self, directory, fingerprint, timer, history=(), resumable=None, runtime=None, min_interval=0.0):
        super().__init__()
        self.min_interval = min_interval  # seconds; epochs ending sooner after the last save are not saved
        self.last_saved = time.monotonic()
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.runtime = runtime or {}
        self.timer = timer
        self.history = list(history)
        self.resumable = resumable or {}
        self.attempt = f"attempt-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        write_json(self.directory / "owner.json", {"attempt": self.attempt})

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "learning_rate": current_learning_rate(self.model), **(logs or {}),
               "seconds": self.timer.seconds[-1]}
        self.history.append(row)
        if not np.isfinite(row.get("loss", 0.0)):
            return  # never resume from a diverged state
        owner = read_json(self.directory / "owner.json")["attempt"]
        if owner != self.attempt:
            raise CheckpointTakenOver(f"{self.directory} now belongs to {owner}; this attempt stops")
        if time.monotonic() - self.last_saved < self.min_interval and not self.model.stop_training:
            return  # saved recently: a kill redoes at most min_interval seconds, and short epochs skip the I/O
        name = f"{self.attempt}/epoch{epoch + 1:04d}"
        with atomic_path(self.directory / f"{name}.keras") as tmp:
            save_model(self.model, tmp)
        with atomic_path(self.directory / f"{name}_seeds.npz") as tmp:
            np.savez(tmp, *[variable.numpy() for variable in seed_states(self.model)])
        stopping = self.resumable.get("early_stopping")
        if stopping is not None and stopping.best_weights is not None:
            with atomic_path(self.directory / f"{name}_best.npz") as tmp:
                np.savez(tmp, *stopping.best_weights)
        # The state file names the files, so a kill between the writes leaves the previous epoch usable.
        write_json(self.directory / "state.json", {
            "epoch": epoch + 1, "name": name, "fingerprint": self.fingerprint, "runtime": self.runtime,
            "history": self.history,
            "stopped": bool(self.model.stop_training),
            "callbacks": {key: callback.state() for key, callback in self.resumable.items()},
        })
        for old in self.directory.glob("attempt-*/epoch*"):  # older epochs, and earlier attempts' files
            if not str(old.relative_to(self.directory)).startswith(name):
                old.unlink(missing_ok=True)
        for folder in self.directory.glob("attempt-*"):
            if folder.name != self.attempt and not any(folder.iterdir()):
                folder.rmdir()
        self.last_saved = time.monotonic()


def seed_states(model):
    return [variable for variable in model.variables if "seed_generator_state" in variable.path]


@dataclass
class Resumed:
    """What a checkpoint restores besides the model."""

    history: list = field(default_factory=list)
    stopped: bool = False  # early stopping had ended the run
    callbacks: dict = field(default_factory=dict)  # callback name -> its counters


class CheckpointMismatch(RuntimeError):
    """A checkpoint written under another thread count, precision or TensorFlow version."""

    recurs = True  # the same job resubmitted meets the same checkpoint (convbench.base.job_errors)


def runtime_facts():
    """What besides the settings decides the exact result: TensorFlow's thread count (it changes
    the order of floating-point sums), the precision policy, TensorFlow's and Keras' versions and the kind of
    device that computes (a GPU's kernels sum in another order than the CPU's)."""
    import keras

    # 0 means "TensorFlow's default": one thread per CPU it sees
    return {"threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
            "precision": keras.mixed_precision.global_policy().name, "tensorflow": tf.__version__,
            "keras": keras.__version__, "device": "GPU" if tf.config.list_logical_devices("GPU") else "CPU"}


PARTS = {"settings": "other training settings", "data": "other prepared data (its content or scaling changed)",
         "architecture": "another architecture definition or training code"}


def checkpoint_mismatch(saved, current):
    """What differs between a checkpoint's fingerprint and this run's ({part: hash}), in words."""
    if not isinstance(saved, dict) or not isinstance(current, dict):
        return "other settings (written by an earlier release)"
    return " and ".join(PARTS.get(part, part) for part in current if saved.get(part) != current[part])


def restore_checkpoint(directory, fingerprint, runtime=None):
    """(model, Resumed) of the last finished epoch, or (None, Resumed()) to start afresh.

    Refuses (CheckpointMismatch) to continue a checkpoint written under another `runtime`: the
    run would mix two computations and equal neither an uninterrupted run of the one nor the other.
    """
    state_path = Path(directory) / "state.json"
    if not state_path.exists():
        return None, Resumed()
    state = read_json(state_path)
    if state["fingerprint"] != fingerprint:
        why = checkpoint_mismatch(state["fingerprint"], fingerprint)
        log.warning("the checkpoint in %s was written for %s; training starts afresh", directory, why)
        notice_this_job(f"an interrupted run's checkpoint was for {why}: training started afresh")
        shutil.rmtree(directory)
        return None, Resumed()
    saved = state.get("runtime", {})
    changed = {key: (saved[key], value) for key, value in (runtime or {}).items() if key in saved and saved[key] != value}
    if changed:
        what = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changed.items())
        raise CheckpointMismatch(
            f"{directory} was written with other runtime settings ({what}); resuming would give a result equal to "
            "no uninterrupted run. Rerun with the same --cores (threads), precision, TensorFlow, Keras and device "
            "kind, or delete "
            "that folder to start this experiment afresh."
        )
    model = load_model(Path(directory) / f"{state['name']}.keras")
    with np.load(Path(directory) / f"{state['name']}_seeds.npz") as saved:
        for variable, key in zip(seed_states(model), saved.files, strict=True):
            variable.assign(saved[key])
    callbacks = state.get("callbacks", {})
    best = Path(directory) / f"{state['name']}_best.npz"
    if "early_stopping" in callbacks and best.exists():
        with np.load(best) as saved:
            callbacks["early_stopping"]["best_weights"] = [saved[key] for key in saved.files]
    log.info("resuming after epoch %d from %s", state["epoch"], directory)
    return model, Resumed(state["history"], state.get("stopped", False), callbacks)
