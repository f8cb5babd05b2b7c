"""Architectures a study declares in config.yaml (`custom_architectures:`): Keras layers with keyword
arguments, made into Architecture values by pure functions."""

from .architectures import ARCHITECTURES, Architecture

# Layers that would run code from the config (or from disk) are refused: a study config is data.
REFUSED_LAYERS = {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}


def custom_architectures(declared):
    """{name: Architecture} of the architectures declared under `custom_architectures` in config.yaml.

    Each is a list of Keras layers with keyword arguments, like a hand-written Sequential model;
    convbench adds the input and a softmax classifier sized to the dataset.
    """
    made = {}
    for name, spec in declared.items():
        if name in ARCHITECTURES:
            raise ValueError(f"custom architecture {name!r} has the name of a registered one; choose another name")
        made[name] = Architecture(
            name, _custom_builder(name, spec["layers"]), spec.get("min_size", 28), spec.get("rgb", False),
            description=spec.get("description", "declared in config.yaml"), custom=True,
        )
    return made


def check_custom(arch):
    """Build a custom architecture once, so that a bad layer fails before any job runs."""
    arch.build((arch.min_size, arch.min_size, 3 if arch.rgb else 1), 10)


def _custom_builder(name, layer_specs):
    def build(input_shape, num_classes):
        import keras

        model = keras.Sequential([keras.Input(shape=input_shape)], name=name)
        for position, spec in enumerate(layer_specs, start=1):
            class_name, arguments = (spec, {}) if isinstance(spec, str) else next(iter(spec.items()))
            layer = _custom_layer(name, position, class_name, arguments or {})
            try:
                model.add(layer)
            except Exception as error:  # Keras reports shape problems here, e.g. a kernel larger than its input
                raise ValueError(f"custom architecture {name!r}, layer {position} ({class_name}): {error}") from None
        model.add(keras.layers.Dense(num_classes, activation="softmax", name="predictions"))
        return model

    build.__doc__ = f"{name}: declared in config.yaml"
    return build


def _custom_layer(name, position, class_name, arguments):
    import keras

    where = f"custom architecture {name!r}, layer {position} ({class_name})"
    layer_class = getattr(keras.layers, class_name, None)
    if class_name in REFUSED_LAYERS:
        raise ValueError(f"{where}: {class_name} would run code from the config and is not allowed")
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise ValueError(f"{where}: keras.layers has no layer called {class_name!r}")
    try:
        return layer_class(**arguments)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None
