"""The training split as model.fit reads it: a seeded per-epoch shuffle, batches read several at a time
(from memory or the shards), then scaled, augmented and resized per batch on every core
(convbench.train.augmentation.InputPreparation), or left uint8 for a model that does it."""

import functools
import math

import tensorflow as tf

from ..evaluate.inference import image_gather, parallel_calls, without_autotune
from .augmentation import InputPreparation

# Bytes read per call, about: a batch read from shards pays a Python call's overhead once per read, so small
# batches are read several at a time (then split: the same batches), 1,365 CIFAR images. Bytes, not images:
# large images are read a batch at a time, as before, and memory stays a few batches.
READ_BYTES = 4 * 2**20


def training_dataset(images, labels, manifest, *, num_classes, batch_size, seed, first_epoch, epochs,
                     augmentation=None, input_size=None, augment_on="input"):
    """Batches for epochs [first_epoch, epochs) as one finite stream.

    Epoch e's order (a stateless shuffle) depends only on (seed, e), and batch b's augmentation draws only
    on (seed, e, b): batches are read and augmented on every core at once, in a fixed order, and a run
    resumed at epoch k replays exactly what an uninterrupted run saw. One stream with
    steps_per_epoch also avoids Keras rebuilding (and stalling on) an iterator every epoch.
    `images`: the uint8 split in memory, or a function reading those of given indices from the
    prepared shards (convbench.evaluate.inference.image_gather): the same batches either way.
    `augment_on="model"`: the batches stay uint8 as stored, neither scaled, augmented nor resized; the
    model's ModelAugmentation layer does all three, with the same draws (convbench.train.augmentation).
    """
    gather_images = image_gather(images, manifest["input_shape"])
    labels = tf.constant(labels)
    on_model = augment_on == "model"
    prepare = None if on_model else InputPreparation(manifest, augmentation, seed, input_size, epochs)
    per_read = batch_size * max(1, READ_BYTES // (batch_size * math.prod(manifest["input_shape"])))

    def read(index):
        return gather_images(index), tf.one_hot(tf.gather(labels, index), num_classes)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(len(labels)), seed=[seed, epoch])
        reads = tf.data.Dataset.from_tensor_slices(order).batch(per_read)
        batches = reads.map(read, num_parallel_calls=parallel_calls(), deterministic=True).rebatch(batch_size)
        if on_model:
            return batches
        return batches.enumerate().map(lambda batch, xy: (prepare(xy[0], epoch, batch), xy[1]),
                                       num_parallel_calls=parallel_calls(), deterministic=True)

    dataset = functools.reduce(tf.data.Dataset.concatenate, map(epoch_batches, range(first_epoch, epochs)))
    return without_autotune(dataset.prefetch(2))
