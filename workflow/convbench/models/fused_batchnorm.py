"""BatchNormalization's training step on TensorFlow's fused kernel.

Keras 3 normalizes a training batch with separate ops (the batch moments, then the normalization),
each a pass over the activations, and as many again for their gradients. tf.keras called
TensorFlow's fused kernel instead (FusedBatchNormV3: oneDNN on CPUs, cuDNN on GPUs); Keras 3 lost it
(keras-team/keras-core#225). The training job gives the BatchNormalization layers of the model it
trains the fused kernel for their training call: the same normalization and the same moving-average
update, and bn_cnn's training step about 1.3x faster on a CPU (BENCHMARKS.md). Only those layers'
call in that process changes: a saved model holds plain Keras layers and loads, evaluates and
exports as before.

Inference stays on Keras' ops. That matters on GPUs under op determinism: TensorFlow has a
deterministic GPU kernel for the fused gradient in training mode, but none with training off, which
is what saliency and Grad-CAM differentiate through.
"""

import types

import keras
import tensorflow as tf

# TensorFlow raises a smaller epsilon to cuDNN's minimum, which would normalize differently.
MIN_EPSILON = 1.001e-5


def fuse_batchnorm(model):
    """Give each BatchNormalization layer of `model` (in nested models too) the fused training call
    where the kernel computes what Keras does; returns how many layers got it."""
    fused = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if (isinstance(layer, keras.layers.BatchNormalization) and not layer.renorm and not layer.synchronized
                and layer.epsilon >= MIN_EPSILON):
            layer.call = types.MethodType(fused_call, layer)
            fused += 1
    return fused


def fused_call(layer, inputs, training=None, mask=None):
    """BatchNormalization.call, with a training batch of 2-D or channels-last 4-D float inputs
    normalized by the fused kernel; anything else (inference, a mask, other layouts) goes to Keras."""
    rank = len(inputs.shape)
    if (not (training is True and layer.trainable) or mask is not None or rank not in (2, 4)
            or layer.axis not in (-1, rank - 1) or inputs.dtype not in (tf.float32, tf.float16, tf.bfloat16)):
        return keras.layers.BatchNormalization.call(layer, inputs, training=training, mask=mask)
    x = tf.cast(inputs, tf.float32)  # statistics in float32 whatever the compute dtype, as Keras does
    channels = x.shape[-1]
    images = x if rank == 4 else tf.reshape(x, (-1, 1, 1, channels))  # features as 1x1 images
    gamma = tf.cast(layer.gamma, tf.float32) if layer.scale else tf.ones((channels,))
    beta = tf.cast(layer.beta, tf.float32) if layer.center else tf.zeros((channels,))
    outputs, mean, sample_variance = tf.compat.v1.nn.fused_batch_norm(
        images, gamma, beta, epsilon=layer.epsilon, data_format="NHWC", is_training=True)
    # The kernel returns the sample variance (n - 1); Keras' moving average takes the batch's own (n).
    count = tf.cast(tf.size(images, out_type=tf.int64) // channels, tf.float32)
    variance = sample_variance * tf.maximum(count - 1, 1) / count
    momentum = layer.momentum
    layer.moving_mean.assign(tf.cast(layer.moving_mean, tf.float32) * momentum + mean * (1.0 - momentum))
    layer.moving_variance.assign(tf.cast(layer.moving_variance, tf.float32) * momentum + variance * (1.0 - momentum))
    if rank == 2:
        outputs = tf.reshape(outputs, tf.shape(x))
    return tf.cast(outputs, layer.compute_dtype)
