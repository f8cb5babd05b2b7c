"""The train stage: a seeded tf.data pipeline, model.fit, and the files an experiment leaves."""

import hashlib
import json
import logging
import math
import time

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from .architectures import create_model
from .atomic import atomic_path, write_json
from .runtime import environment_facts

log = logging.getLogger(__name__)


def config_hash(settings):
    """Short stable hash of the settings that define an experiment."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def training_dataset(images, labels, manifest, *, num_classes, batch_size, seed, first_epoch, epochs):
    """Batches for epochs [first_epoch, epochs) as one finite stream.

    Each epoch's order is a stateless shuffle keyed by (seed, epoch): no Python loop over
    samples, and a run resumed at epoch k replays exactly the order an uninterrupted run saw.
    One stream with steps_per_epoch also avoids Keras rebuilding (and stalling on) a new
    iterator every epoch.
    """
    images = tf.constant(images)  # uint8: four times smaller than float32 in memory
    labels = tf.constant(labels)
    params = manifest["preprocessing"]
    offset = tf.constant(params["offset"], tf.float32)
    scale = tf.constant(params["scale"], tf.float32)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(tf.shape(labels, out_type=tf.int64)[0]), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    def gather(index):
        x = (tf.cast(tf.gather(images, index), tf.float32) - offset) * scale
        y = tf.one_hot(tf.gather(labels, index), num_classes)
        return x, y

    dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_batches)
    return without_autotune(dataset.map(gather, num_parallel_calls=2, deterministic=True).prefetch(2))


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


def make_optimizer(name, learning_rate):
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


class TrainingDiverged(RuntimeError):
    pass


def train_experiment(data, architecture, *, seed, settings, strategy, model_path, history_path, meta_path):
    """Train one (dataset, architecture, seed) experiment and write model, history and metadata."""
    x_train, y_train = data.raw("train")
    x_val, y_val = data.scaled("val")
    batch_size, epochs = settings["batch_size"], settings["epochs"]
    steps = math.ceil(len(y_train) / batch_size)

    with strategy.scope():
        model = create_model(architecture, data.input_shape, data.num_classes)
        model.compile(
            optimizer=make_optimizer(settings["optimizer"], settings["learning_rate"]),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
    train_ds = training_dataset(
        x_train, y_train, data.manifest,
        num_classes=data.num_classes, batch_size=batch_size, seed=seed, first_epoch=0, epochs=epochs,
    )
    val_ds = evaluation_dataset(x_val, y_val, data.num_classes, max(batch_size, 256))
    timer = EpochTimer(len(y_train))
    log.info("training %s: %d parameters, %d epochs of %d steps", architecture, model.count_params(), epochs, steps)
    history = model.fit(
        train_ds,
        epochs=epochs,
        steps_per_epoch=steps,
        validation_data=val_ds,
        shuffle=False,  # the dataset is already shuffled, per epoch
        callbacks=[keras.callbacks.TerminateOnNaN(), timer],
        verbose=0,
    )
    frame = pd.DataFrame(history.history)
    if frame["loss"].isna().any() or not np.isfinite(frame["loss"].iloc[-1]):
        raise TrainingDiverged(
            f"{architecture} diverged: loss became NaN at epoch {len(frame)}; lower the learning rate"
        )
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    frame["seconds"] = timer.seconds

    with atomic_path(model_path) as tmp:
        model.save(tmp)
    with atomic_path(history_path) as tmp:
        frame.to_csv(tmp, index=False)
    seconds = np.asarray(timer.seconds)
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
            "best_epoch": int(frame["val_loss"].idxmin()) + 1,
            "seconds_per_epoch": seconds.tolist(),
            "train_seconds": float(seconds.sum()),
            "images_per_second": float(len(y_train) / np.median(seconds)),
            "environment": environment_facts(),
        },
    )
    return model
