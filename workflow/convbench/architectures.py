"""Architecture registry: one pure builder per architecture, `(input_shape, num_classes) -> keras.Model`.

Keras is imported inside the builders so that Snakemake can read the registry (names and
input needs) while parsing the workflow without paying TensorFlow's import time.
"""

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable
    min_size: int  # inputs smaller than this are upscaled (e.g. 8x8 digits -> 28x28)
    rgb: bool = False  # needs 3 channels (grayscale inputs are repeated)
    description: str = ""


ARCHITECTURES: dict[str, Architecture] = {}


def register(name, *, min_size, rgb=False):
    """Decorator adding a builder to the registry under `name`."""

    def add(build):
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} is registered twice")
        doc = (build.__doc__ or "").strip().splitlines()
        ARCHITECTURES[name] = Architecture(name, build, min_size, rgb, doc[0] if doc else "")
        return build

    return add


def get_architecture(name) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; registered: {', '.join(sorted(ARCHITECTURES))}") from None


def create_model(name, input_shape, num_classes):
    return get_architecture(name).build(tuple(input_shape), num_classes)


def input_spec(name, native_size, native_channels):
    """(size, channels) the architecture is fed for a dataset of the given native image shape."""
    arch = get_architecture(name)
    return max(native_size, arch.min_size), 3 if arch.rgb else native_channels


@register("simple_cnn", min_size=28)
def simple_cnn(input_shape, num_classes):
    """The classic Keras MNIST convnet: two conv/pool stages, dropout, one dense layer."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="simple_cnn",
    )


@register("bn_cnn", min_size=28)
def bn_cnn(input_shape, num_classes):
    """Deeper CIFAR-style CNN: three blocks of 2 x (conv, batch norm, ReLU), pooling and dropout."""
    import keras
    from keras import layers

    # BatchNorm momentum 0.9 (Keras default 0.99): on small datasets (a few steps per epoch) the
    # moving statistics otherwise lag so far behind that validation accuracy stays at chance.
    model = keras.Sequential([keras.Input(shape=input_shape)], name="bn_cnn")
    for block, (filters, dropout) in enumerate([(32, 0.2), (64, 0.3), (128, 0.4)], start=1):
        for conv in (1, 2):
            model.add(layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_conv{conv}"))
            model.add(layers.BatchNormalization(momentum=0.9))
            model.add(layers.ReLU())
        model.add(layers.MaxPooling2D(2))
        model.add(layers.Dropout(dropout))
    model.add(layers.Flatten())
    model.add(layers.Dense(128, activation="relu"))
    model.add(layers.BatchNormalization(momentum=0.9))
    model.add(layers.Dropout(0.5))
    model.add(layers.Dense(num_classes, activation="softmax", name="predictions"))
    return model
