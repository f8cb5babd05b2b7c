"""Custom Keras layers a saved convbench model may contain, below both the architectures that
load models and the transfer-learning builders that use them (so neither imports the other)."""

import functools


@functools.cache
def imagenet_preprocessing_class():
    """The ImageNetPreprocessing layer class, registered with Keras (made on first use: no Keras import before)."""
    import keras

    @keras.saving.register_keras_serializable(package="convbench")
    class ImageNetPreprocessing(keras.layers.Layer):
        """From [0, 1] pixels to what the pretrained base was trained on (keras.applications'
        preprocess_input), as a layer so that the saved model needs no code to load (safe_mode).

        tf: [-1, 1]; caffe: 0..255, RGB -> BGR, ImageNet channel means subtracted; raw255: 0..255
        (EfficientNet rescales inside the model).
        """

        CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

        def __init__(self, mode, **kwargs):
            super().__init__(**kwargs)
            if mode not in ("tf", "caffe", "raw255"):
                raise ValueError(f"unknown ImageNet preprocessing {mode!r}")
            self.mode = mode

        def call(self, inputs):
            ops = keras.ops
            if self.mode == "tf":
                return inputs * 2.0 - 1.0
            pixels = inputs * 255.0
            if self.mode == "raw255":
                return pixels
            return ops.flip(pixels, axis=-1) - ops.convert_to_tensor(self.CAFFE_MEAN_BGR, dtype=pixels.dtype)

        def get_config(self):
            return {**super().get_config(), "mode": self.mode}

    return ImageNetPreprocessing


@functools.cache
def local_response_normalization_class():
    """AlexNet's local response normalisation as a registered layer (Keras has none)."""
    import keras

    @keras.saving.register_keras_serializable(package="convbench")
    class LocalResponseNormalization(keras.layers.Layer):
        """b = a / (k + alpha * sum of a^2 over `size` neighbouring channels)^beta, Krizhevsky et
        al. 2012, Section 3.3, with their n=5, k=2, alpha=1e-4, beta=0.75 (TensorFlow's op computes
        exactly this sum, over depth_radius channels on each side)."""

        def __init__(self, size=5, k=2.0, alpha=1e-4, beta=0.75, **kwargs):
            super().__init__(**kwargs)
            self.size, self.k, self.alpha, self.beta = size, k, alpha, beta

        def call(self, inputs):
            import tensorflow as tf

            return tf.nn.local_response_normalization(inputs, depth_radius=self.size // 2, bias=self.k,
                                                      alpha=self.alpha, beta=self.beta)

        def get_config(self):
            return {**super().get_config(), "size": self.size, "k": self.k, "alpha": self.alpha, "beta": self.beta}

    return LocalResponseNormalization
