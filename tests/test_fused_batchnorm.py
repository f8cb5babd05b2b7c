"""BatchNormalization trained on TensorFlow's fused kernel: what Keras computes, faster."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from convbench.models.fused_batchnorm import fuse_batchnorm


def twin_layers(shape, **options):
    """Two built BatchNormalization layers with the same (non-trivial) weights; the second fused."""
    rng = np.random.default_rng(0)
    layers = [keras.layers.BatchNormalization(momentum=0.9, **options) for _ in range(2)]
    for layer in layers:
        layer.build(shape)
    for weights in zip(*(layer.weights for layer in layers)):
        value = rng.uniform(0.5, 1.5, weights[0].shape).astype("float32")
        for weight in weights:
            weight.assign(value)
    assert fuse_batchnorm(keras.Sequential([layers[1]])) == 1
    return layers


def training_step(layer, x):
    """Output, moving statistics and gradients (input, gamma, beta) of one traced training call."""

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.sin(tf.cast(y, tf.float32)) * tf.range(1, y.shape[-1] + 1, dtype=tf.float32))
        return y, tape.gradient(loss, [x, *layer.trainable_weights])

    y, gradients = step(x)
    ops = {op.type for op in step.get_concrete_function(x).graph.get_operations()}
    return y, [layer.moving_mean.numpy(), layer.moving_variance.numpy()], gradients, ops


@pytest.mark.parametrize("shape", [(32, 6, 5, 7), (48, 9)], ids=["images", "features"])
@pytest.mark.parametrize("options", [{}, {"center": False}, {"scale": False}], ids=["both", "no beta", "no gamma"])
def test_the_fused_training_call_computes_what_keras_does(shape, options):
    keras_layer, fused_layer = twin_layers(shape, **options)
    x = tf.constant(np.random.default_rng(1).normal(3, 2, shape).astype("float32"))
    np.testing.assert_array_equal(fused_layer(x), keras_layer(x))  # inference: Keras' own ops, bitwise
    expected, fused = training_step(keras_layer, x), training_step(fused_layer, x)
    assert "FusedBatchNormV3" in fused[3] and "FusedBatchNormV3" not in expected[3]  # the fast path ran
    np.testing.assert_allclose(fused[0], expected[0], atol=2e-5)
    for ours, theirs in zip(fused[1], expected[1], strict=True):  # moving mean and (biased) variance
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    for ours, theirs in zip(fused[2], expected[2], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


def test_the_fused_call_keeps_the_mixed_precision_compute_dtype():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras_layer, fused_layer = twin_layers((16, 4, 4, 3))
        x = tf.constant(np.random.default_rng(1).normal(size=(16, 4, 4, 3)), tf.bfloat16)
        expected, fused = training_step(keras_layer, x), training_step(fused_layer, x)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert fused[0].dtype == expected[0].dtype == tf.bfloat16 and "FusedBatchNormV3" in fused[3]
    np.testing.assert_allclose(tf.cast(fused[0], tf.float32), tf.cast(expected[0], tf.float32), atol=0.05)
    np.testing.assert_allclose(fused[1][0], expected[1][0], rtol=1e-5)


def test_layouts_and_options_the_kernel_does_not_cover_stay_with_keras():
    channels_first = keras.layers.BatchNormalization(axis=1)
    renorm = keras.layers.BatchNormalization(renorm=True)
    tiny_epsilon = keras.layers.BatchNormalization(epsilon=1e-6)
    model = keras.Sequential([keras.Input((3, 4, 4)), channels_first, renorm, tiny_epsilon])
    assert fuse_batchnorm(model) == 1  # only the channels-first one, which then falls back to Keras
    x = tf.constant(np.random.default_rng(0).normal(size=(8, 3, 4, 4)).astype("float32"))
    *_, ops = training_step(channels_first, x)
    assert "FusedBatchNormV3" not in ops


def test_a_model_trained_fused_saves_plain_keras_layers(tmp_path):
    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Conv2D(3, 3), keras.layers.BatchNormalization(),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    fuse_batchnorm(model)
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(16, 4, 4, 2)).astype("float32")
    model.fit(x, np.zeros((16, 2)), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert "call" not in vars(loaded.layers[1])  # the class's own call
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_gradients_through_inference_never_reach_the_fused_kernel():
    """Saliency and Grad-CAM differentiate a model in inference mode. TensorFlow has no deterministic GPU
    kernel for the fused gradient with training off, so that path must stay on Keras' ops."""
    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.BatchNormalization()])
    fuse_batchnorm(model)
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 4, 4, 2)).astype("float32"))

    @tf.function
    def input_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(model(x, training=False) ** 2)
        return tape.gradient(loss, x)

    ops = {op.type for op in input_gradient.get_concrete_function(x).graph.get_operations()}
    assert not any(op.startswith("FusedBatchNorm") for op in ops)
