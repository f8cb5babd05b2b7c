"""The tf.data pipelines every stage that runs a model shares, and the one forward pass that
evaluation and prediction both use, so a model predicts exactly the same numbers in both."""

import numpy as np
import tensorflow as tf

BATCH_SIZE = 256  # batch composition can decide the last bits of a result: keep it the same everywhere


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


def class_probabilities(model, images, batch_size=BATCH_SIZE):
    """(n, classes) float32 probabilities of already-scaled images, in their order."""
    if not len(images):
        return np.zeros((0, model.output_shape[-1]), np.float32)
    batches = without_autotune(tf.data.Dataset.from_tensor_slices(images).batch(batch_size).prefetch(2))
    return model.predict(batches, verbose=0).astype(np.float32)
