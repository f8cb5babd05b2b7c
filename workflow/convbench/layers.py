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
