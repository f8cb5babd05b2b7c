"""The tf.data pipelines every stage that runs a model shares, and the one forward pass that
evaluation and prediction both use, so a model predicts exactly the same numbers in both.

Models may take a larger (or smaller) input than the prepared data (`input_size`): every pipeline
resizes per batch, bilinearly, with resize_batch, so training, evaluation, figures, prediction and
export checks all see the same pixels and no upscaled copy of a dataset is ever stored.
"""

import os

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


def image_gather(images, image_shape):
    """index (an int tensor) -> those uint8 images: from `images` in memory (a NumPy array, held as a
    constant), or read from prepared shards (`images`: a function of NumPy indices, such as a
    split's PreparedData.images) one batch at a time, for data larger than memory."""
    if isinstance(images, np.ndarray):
        constant = tf.constant(images)  # uint8: four times smaller than float32
        return lambda index: tf.gather(constant, index)

    def read(index):
        batch = tf.numpy_function(images, [index], tf.uint8, stateful=False)
        batch.set_shape([None, *image_shape])
        return batch

    return read


def split_batches(data, split, batch_size=BATCH_SIZE, input_size=None, with_labels=False, in_memory=False,
                  stored=False):
    """A prepared split in order, read a batch at a time, scaled (and resized to input_size) per batch:
    memory is a few batches whatever the split's size (in_memory: the split is read once and held,
    for splits read every epoch that fit). with_labels: (images, one-hot labels). stored: the uint8 images as
    stored, neither scaled nor resized (for a model that does both: convbench.train.augmentation)."""
    labels = data.labels(split)
    read = image_gather(data.images(split) if in_memory else (lambda index: data.images(split, index)),
                        data.input_shape)
    params = data.manifest["preprocessing"]
    offset, scale = tf.constant(params["offset"], tf.float32), tf.constant(params["scale"], tf.float32)

    def load(index):
        x = read(index) if stored else resize_batch((tf.cast(read(index), tf.float32) - offset) * scale, input_size)
        return (x, tf.one_hot(tf.gather(labels, index), data.num_classes)) if with_labels else x

    batches = tf.data.Dataset.from_tensor_slices(np.arange(len(labels))).batch(batch_size)
    return without_autotune(batches.map(load, num_parallel_calls=parallel_calls(), deterministic=True).prefetch(2))


def parallel_calls():
    """Batches tf.data prepares at once: one per thread the job was given (configure_tensorflow), at least 2."""
    threads = tf.config.threading.get_intra_op_parallelism_threads() or len(os.sched_getaffinity(0))
    return max(2, threads)


def without_autotune(dataset):
    """Measured here: with tf.data's autotuner on, Keras sometimes sat idle for 3-35 s while
    tearing down an iterator (end of fit, every validation pass). Fixed parallelism avoids it."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def split_probabilities(model, data, split, batch_size=BATCH_SIZE):
    """(n, classes) float32 probabilities of a prepared split, in order, read a batch at a time."""
    if not data.count(split):
        return np.zeros((0, model.output_shape[-1]), np.float32)
    try:
        with data.reading():  # damaged data read in tf.data's threads: its own one line, not TensorFlow's
            return model.predict(split_batches(data, split, batch_size, model_side(model)), verbose=0).astype(np.float32)
    finally:
        data.close()  # the shards' file descriptors; the next pass opens them again


def class_probabilities(model, images, batch_size=BATCH_SIZE):
    """(n, classes) float32 probabilities of already-scaled images, in their order."""
    if not len(images):
        return np.zeros((0, model.output_shape[-1]), np.float32)
    batches = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    if tuple(images.shape[1:3]) != (model_side(model),) * 2:
        batches = batches.map(lambda x: resize_batch(x, model_side(model)))
    return model.predict(without_autotune(batches.prefetch(2)), verbose=0).astype(np.float32)
