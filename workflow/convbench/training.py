"""The train stage: a seeded tf.data pipeline, model.fit, and the files an experiment leaves."""

import functools
import hashlib
import json
import logging
import math
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from .architectures import create_model
from .atomic import atomic_path, read_json, write_json
from .runtime import environment_facts

log = logging.getLogger(__name__)


def config_hash(settings):
    """Short stable hash of the settings that define an experiment."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def make_augmentation(settings, seed):
    """Keras preprocessing layers with ImageDataGenerator's knobs; None when every knob is off.

    rotation_range and shear_range are in degrees, shifts and zoom are fractions of the image.
    """
    fill = {"fill_mode": settings["fill_mode"]}
    layers = []
    if settings["horizontal_flip"]:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if settings["rotation_range"]:
        layers.append(keras.layers.RandomRotation(settings["rotation_range"] / 360, seed=seed + 1, **fill))
    if settings["width_shift_range"] or settings["height_shift_range"]:
        layers.append(keras.layers.RandomTranslation(
            settings["height_shift_range"], settings["width_shift_range"], seed=seed + 2, **fill))
    if settings["shear_range"]:
        shear = math.tan(math.radians(settings["shear_range"]))
        layers.append(keras.layers.RandomShear(x_factor=shear, y_factor=shear, seed=seed + 3, **fill))
    if settings["zoom_range"]:
        layers.append(keras.layers.RandomZoom(settings["zoom_range"], seed=seed + 4, **fill))
    return keras.Sequential(layers, name="augmentation") if layers else None


def epoch_seed(seed, epoch):
    """Seed for one epoch's random draws, derived only from (experiment seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] % 2**31)


def training_dataset(images, labels, manifest, *, num_classes, batch_size, seed, first_epoch, epochs,
                     augmentation=None):
    """Batches for epochs [first_epoch, epochs) as one finite stream.

    Epoch e's order (a stateless shuffle) and its augmentation draws depend only on (seed, e), so
    a run resumed at epoch k replays exactly what an uninterrupted run saw. One stream with
    steps_per_epoch also avoids Keras rebuilding (and stalling on) an iterator every epoch.
    """
    images = tf.constant(images)  # uint8: four times smaller than float32 in memory
    labels = tf.constant(labels)
    params = manifest["preprocessing"]
    offset = tf.constant(params["offset"], tf.float32)
    scale = tf.constant(params["scale"], tf.float32)

    def gather(index):
        x = (tf.cast(tf.gather(images, index), tf.float32) - offset) * scale
        y = tf.one_hot(tf.gather(labels, index), num_classes)
        return x, y

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(len(labels)), seed=[seed, epoch])
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        batches = batches.map(gather, num_parallel_calls=2, deterministic=True)
        augment = make_augmentation(augmentation, epoch_seed(seed, epoch)) if augmentation else None
        if augment is not None:
            # Training split only; one call at a time so the seeded draws come in a fixed order.
            batches = batches.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=1)
        return batches

    dataset = functools.reduce(tf.data.Dataset.concatenate, map(epoch_batches, range(first_epoch, epochs)))
    return without_autotune(dataset.prefetch(2))


def evaluation_dataset(images, labels, num_classes, batch_size):
    """Already-scaled images with one-hot labels, in order."""
    dataset = tf.data.Dataset.from_tensor_slices((images, tf.one_hot(labels, num_classes)))
    return without_autotune(dataset.batch(batch_size).prefetch(2))


def without_autotune(dataset):
    """Measured here: with tf.data's autotuner on, Keras sometimes sat idle for 3-35 s while
    tearing down an iterator (end of fit, every validation pass). Fixed parallelism avoids it."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def make_optimizer(name, learning_rate, schedule="constant", total_steps=None):
    """The optimizer; a cosine schedule is a function of the step count, which checkpoints keep."""
    if schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total_steps)
    elif schedule != "constant":
        raise ValueError(f"unknown schedule {schedule!r}; use constant or cosine")
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    raise ValueError(f"unknown optimizer {name!r}; use adam, adamw or sgd")


class EpochTimer(keras.callbacks.Callback):
    """Records wall time and images/s of every epoch, and logs them as progress."""

    def __init__(self, images_per_epoch):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._start
        self.seconds.append(elapsed)
        metrics = ", ".join(f"{key}={value:.4f}" for key, value in (logs or {}).items())
        log.info("epoch %d: %.2f s, %.0f images/s, %s", epoch + 1, elapsed, self.images_per_epoch / elapsed, metrics)


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch, saves what a resumed run needs: model and optimizer, the dropout
    generators' states (Keras does not restore them on load) and the history so far.

    The directory lies outside the rule's outputs, which Snakemake deletes when a job fails.
    """

    def __init__(self, directory, fingerprint, timer, history=()):
        super().__init__()
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.timer = timer
        self.history = list(history)

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **(logs or {}), "seconds": self.timer.seconds[-1]}
        self.history.append(row)
        if not np.isfinite(row.get("loss", 0.0)):
            return  # never resume from a diverged state
        name = f"epoch{epoch + 1:04d}"
        with atomic_path(self.directory / f"{name}.keras") as tmp:
            self.model.save(tmp)
        with atomic_path(self.directory / f"{name}_seeds.npz") as tmp:
            np.savez(tmp, *[variable.numpy() for variable in seed_states(self.model)])
        # The state file names the files, so a kill between the writes leaves the previous epoch usable.
        write_json(self.directory / "state.json",
                   {"epoch": epoch + 1, "name": name, "fingerprint": self.fingerprint, "history": self.history})
        for old in self.directory.glob("epoch*"):
            if not old.name.startswith(name):
                old.unlink()


def seed_states(model):
    return [variable for variable in model.variables if "seed_generator_state" in variable.path]


def restore_checkpoint(directory, fingerprint):
    """(model, history rows) of the last finished epoch, or (None, []) to start afresh."""
    state_path = Path(directory) / "state.json"
    if not state_path.exists():
        return None, []
    state = read_json(state_path)
    if state["fingerprint"] != fingerprint:
        log.info("checkpoint in %s is for other settings; starting afresh", directory)
        shutil.rmtree(directory)
        return None, []
    model = keras.saving.load_model(Path(directory) / f"{state['name']}.keras", safe_mode=True)
    with np.load(Path(directory) / f"{state['name']}_seeds.npz") as saved:
        for variable, key in zip(seed_states(model), saved.files, strict=True):
            variable.assign(saved[key])
    log.info("resuming after epoch %d from %s", state["epoch"], directory)
    return model, state["history"]


class TrainingDiverged(RuntimeError):
    pass


def train_experiment(data, architecture, *, seed, settings, strategy, model_path, history_path, meta_path,
                     checkpoint_dir):
    """Train one (dataset, architecture, seed) experiment and write model, history and metadata.

    A run killed part-way resumes from `checkpoint_dir` at the next epoch, with the same result.
    """
    x_train, y_train = data.raw("train")
    x_val, y_val = data.scaled("val")
    batch_size, epochs = settings["batch_size"], settings["epochs"]
    steps = math.ceil(len(y_train) / batch_size)
    fingerprint = config_hash({"architecture": architecture, "seed": seed, "settings": settings,
                               "data": data.manifest["source_sha256"], "input_shape": list(data.input_shape)})

    with strategy.scope():
        model, history = restore_checkpoint(checkpoint_dir, fingerprint)
        if model is None:
            model = create_model(architecture, data.input_shape, data.num_classes)
            model.compile(
                optimizer=make_optimizer(settings["optimizer"], settings["learning_rate"],
                                         settings.get("schedule", "constant"), epochs * steps),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=settings.get("label_smoothing", 0.0)),
                metrics=["accuracy"],
            )
    first_epoch = len(history)
    train_ds = training_dataset(
        x_train, y_train, data.manifest, num_classes=data.num_classes, batch_size=batch_size, seed=seed,
        first_epoch=first_epoch, epochs=epochs, augmentation=settings["augmentation"],
    )
    val_ds = evaluation_dataset(x_val, y_val, data.num_classes, max(batch_size, 256))
    timer = EpochTimer(len(y_train))
    checkpoint = EpochCheckpoint(checkpoint_dir, fingerprint, timer, history)
    log.info("training %s: %d parameters, epochs %d..%d of %d steps", architecture, model.count_params(),
             first_epoch + 1, epochs, steps)
    if first_epoch < epochs:
        model.fit(
            train_ds,
            initial_epoch=first_epoch,
            epochs=epochs,
            steps_per_epoch=steps,
            validation_data=val_ds,
            shuffle=False,  # the dataset is already shuffled, per epoch
            callbacks=[keras.callbacks.TerminateOnNaN(), timer, checkpoint],
            verbose=0,
        )
    frame = pd.DataFrame(checkpoint.history)
    if not np.isfinite(frame["loss"]).all():
        raise TrainingDiverged(
            f"{architecture} diverged: loss became NaN at epoch {len(frame)}; lower the learning rate"
        )

    with atomic_path(model_path) as tmp:
        model.save(tmp)
    with atomic_path(history_path) as tmp:
        frame.to_csv(tmp, index=False)
    seconds = frame["seconds"].to_numpy()
    write_json(
        meta_path,
        {
            "architecture": architecture,
            "dataset": data.manifest["dataset"],
            "seed": seed,
            "settings": settings,
            "config_hash": config_hash(settings),
            "parameters": int(model.count_params()),
            "input_shape": list(data.input_shape),
            "epochs_run": len(frame),
            "resumed_after_epoch": first_epoch,
            "best_epoch": int(frame["val_loss"].idxmin()) + 1,
            "seconds_per_epoch": seconds.tolist(),
            "train_seconds": float(seconds.sum()),
            "images_per_second": float(len(y_train) / np.median(seconds)),
            "environment": environment_facts(),
        },
    )
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return model
