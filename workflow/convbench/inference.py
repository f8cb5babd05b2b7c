"""The tf.data pipelines every stage that runs a model shares, and the one forward pass that
evaluation and prediction both use, so a model predicts exactly the same numbers in both.

Models may take a larger (or smaller) input than the prepared data (`input_size`): every pipeline
resizes per batch, bilinearly, with resize_batch, so training, evaluation, figures, prediction and
export checks all see the same pixels and no upscaled copy of a dataset is ever stored.
"""

import numpy as np
import tensorflow as tf

BATCH_SIZE = 256  # batch composition can decide the last bits of a result: keep it the same everywhere


def resize_batch(images, size):
    """A batch at size x size (bilinear, antialiased when shrinking); unchanged when it already is."""
    if size is None or tuple(images.shape[1:3]) == (size, size):
        return images
    return tf.image.resize(images, (size, size), method="bilinear", antialias=True)


def model_side(model):
    return model.input_shape[1]


def fit_to_model(images, model):
    """Scaled images (a NumPy batch) as the model takes them, as float32 NumPy."""
    return np.asarray(resize_batch(tf.convert_to_tensor(images, tf.float32), model_side(model)), np.float32)


def evaluation_dataset(images, labels, num_classes, batch_size, input_size=None):
    """Already-scaled images (resized per batch to input_size) with one-hot labels, in order."""
    dataset = tf.data.Dataset.from_tensor_slices((images, tf.one_hot(labels, num_classes))).batch(batch_size)
    if input_size is not None and tuple(images.shape[1:3]) != (input_size, input_size):
        dataset = dataset.map(lambda x, y: (resize_batch(x, input_size), y))
    return without_autotune(dataset.prefetch(2))


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
    batches = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    if tuple(images.shape[1:3]) != (model_side(model),) * 2:
        batches = batches.map(lambda x: resize_batch(x, model_side(model)))
    return model.predict(without_autotune(batches.prefetch(2)), verbose=0).astype(np.float32)
