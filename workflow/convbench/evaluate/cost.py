"""The measure_cost stage: latency and throughput of every trained model of a dataset, measured in one
job after all of them are trained, back to back and interleaved over rounds.

Measured inside each evaluation job, the figures depended on what else ran at that moment (simple_cnn's
throughput came out 8,088 / 4,580 / 15,086 images/s across three seeds). Here every model meets the
same conditions: one process, one thread count, the job alone on its machine (the rule takes every
local core; the SLURM profile asks for an exclusive node), each round measuring every model once in
turn, rotated so that no model always goes first. Seeds of one architecture and variant share their
network, so one model per (architecture, variant) is measured and its figures stand for all seeds.
Inputs are random images of the model's input shape: a dense convolutional network's speed does not
depend on pixel values.
"""

import logging
import platform
import time

import numpy as np
import pandas as pd
import tensorflow as tf

from ..base.atomic import atomic_path
from ..base.runtime import cpu_model
from ..models.saving import load_model

log = logging.getLogger(__name__)

IDENTITY = ["dataset", "architecture", "variant"]


def inference_function(model):
    """A compiled forward pass: what serving would run, without model.predict's per-call overhead."""
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def latency_ms(infer, image, calls):
    """Milliseconds of each of `calls` single-image forward passes."""
    batch = tf.constant(image[np.newaxis])
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        infer(batch).numpy()
        times.append(1000 * (time.perf_counter() - start))
    return times


def throughput(infer, batch):
    """Images per second of one forward pass over a large batch."""
    start = time.perf_counter()
    infer(batch).numpy()
    return len(batch) / (time.perf_counter() - start)


class Subject:
    """One model under measurement: its compiled forward passes and what each round measured."""

    def __init__(self, identity, model_path, batch_size, seed):
        self.identity = identity
        model = load_model(model_path)
        shape = tuple(model.input_shape[1:])
        rng = np.random.default_rng(seed)
        self.image = rng.random(shape, dtype=np.float32)
        self.batch = tf.constant(rng.random((batch_size, *shape), dtype=np.float32))
        self.infer = inference_function(model)
        self.precision = computed_in(model)
        self.latency_rounds, self.throughput_rounds = [], []

    def warm_up(self, calls=5):
        for _ in range(calls):  # the first calls trace and allocate
            self.infer(tf.constant(self.image[np.newaxis])).numpy()
        self.infer(self.batch).numpy()

    def measure(self, calls):
        self.latency_rounds.append(float(np.median(latency_ms(self.infer, self.image, calls))))
        self.throughput_rounds.append(throughput(self.infer, self.batch))

    def row(self):
        lat, thr = np.asarray(self.latency_rounds), np.asarray(self.throughput_rounds)
        return {**self.identity, "latency_ms": float(np.median(lat)), "latency_ms_min": float(lat.min()),
                "latency_ms_max": float(lat.max()), "throughput_images_per_second": float(np.median(thr)),
                "throughput_min": float(thr.min()), "throughput_max": float(thr.max()), "rounds": len(lat),
                "precision": self.precision}


def computed_in(model):
    """The precision a model computes in: its layers' policy (a loaded mixed-precision model's own
    policy reads float32; its last layer stays float32 by design)."""
    mixed = {layer.dtype_policy.name for layer in model.layers if layer.weights} - {"float32"}
    return min(mixed) if mixed else "float32"


def measurement_device(threads):
    """Where the numbers were measured, as the report states it."""
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(device).get("device_name", device.name)
                 for device in tf.config.list_physical_devices("GPU")]
        return f"GPU: {', '.join(names)}"
    return f"CPU: {cpu_model()}, {threads} threads"


def measure_cost(models, threads, rounds=5, latency_calls=30, batch_size=256, seed=0):
    """A table, a row per model: median latency (ms, batch 1) and throughput (images/s, batch
    `batch_size`) over `rounds` interleaved rounds, with their min and max across rounds.

    `models`: [(identity dict, model path)], each measured once per round in rotating order.
    """
    subjects = [Subject(identity, path, batch_size, seed) for identity, path in models]
    for subject in subjects:
        subject.warm_up()
    for round_index in range(rounds):
        shift = round_index % len(subjects)
        for subject in subjects[shift:] + subjects[:shift]:
            subject.measure(latency_calls)
        log.info("round %d of %d done", round_index + 1, rounds)
    frame = pd.DataFrame([subject.row() for subject in subjects])
    frame["measured_on"] = measurement_device(threads)
    frame["host"] = platform.node()
    return frame


def write_cost(models, out_csv, threads, **options):
    frame = measure_cost(models, threads, **options)
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False)
    return frame
