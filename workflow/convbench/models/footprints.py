"""How much memory training an architecture takes, known before any job has run.

A training job holds TensorFlow itself, the weights with their gradients and Adam's two slots, and
the activations a batch leaves for the backward pass. The last two come from the model: its
parameters and the outputs of all its layers per image, counted here for every built-in
architecture and transfer base at two input sides and kept in footprints.json (regenerate with
`python -m convbench.models.footprints`; tests/test_memory.py checks it against the models). Between
the sides both grow as a + b * side**2. The factors are measured (BENCHMARKS.md, memory): the
Snakefile asks this much for a job no run has measured yet; once one has, its measured peak counts.
"""

import json
import math
import sys
from pathlib import Path

FOOTPRINTS_FILE = Path(__file__).with_name("footprints.json")
HIGH_SIDE = 224
TENSORFLOW_MB = 1300  # a training job's resident memory with the smallest model (1,322 MB measured, simple_cnn on digits)
BYTES_PER_PARAMETER = 16  # float32 weights, gradients and Adam's two slots
# Resident bytes per float32 layer output kept by a training step, measured: ResNet-50 from scratch
# at 224 px, 125 MB per image of batch (BENCHMARKS.md, input_size) for 148 MB of layer outputs; a
# transfer model's frozen base keeps fewer (MobileNetV2 at 224 px, 0.4: 0.5 with a margin).
ACTIVATION_FACTOR = {"scratch": 0.85, "transfer": 0.5}


def footprint_key(architecture):
    """Where an architecture's footprint is kept: its name, or `transfer:<base>` for transfer learning
    (the head is the same for every base)."""
    return f"transfer:{architecture.transfer['base']}" if architecture.transfer else architecture.name


def count_footprint(model):
    """(parameters, layer output values per image) of a built Keras model, nested models' layers included."""
    import keras

    values = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, (keras.layers.InputLayer, keras.Model)):
            continue  # a nested model's layers are counted one by one
        for output in keras.tree.flatten(layer.output):
            values += math.prod(output.shape[1:])
    return model.count_params(), values


def measure_footprints():
    """{key: {side: [parameters, values per image]}} of every built-in architecture and transfer base."""
    import keras

    from .architectures import ARCHITECTURES
    from .transfer import BASES, transfer_architectures

    transfer = transfer_architectures({f"t_{base}": {"base": base, "weights": None} for base in BASES})
    footprints = {}
    for architecture in [*ARCHITECTURES.values(), *transfer.values()]:
        sides = (max(architecture.min_size, 32), HIGH_SIDE)
        counts = {}
        for side in sides:
            keras.backend.clear_session()
            counts[str(side)] = list(count_footprint(architecture.build((side, side, 3), 10)))
        footprints[footprint_key(architecture)] = counts
    return footprints


def stored_footprints():
    return json.loads(FOOTPRINTS_FILE.read_text())


def training_need_mb(architecture, side, batch_size, footprints=None):
    """MB a training job of `architecture` (an Architecture) needs at input `side` and `batch_size`,
    None for an architecture without a stored footprint (custom ones)."""
    counts = (footprints or stored_footprints()).get(footprint_key(architecture))
    if counts is None:
        return None
    (low, at_low), (high, at_high) = sorted((int(side), values) for side, values in counts.items())

    def at(index):  # a + b * side**2 through the two measured sides
        slope = (at_high[index] - at_low[index]) / (high**2 - low**2)
        return max(at_low[index], at_low[index] + slope * (side**2 - low**2))

    factor = ACTIVATION_FACTOR["transfer" if architecture.transfer else "scratch"]
    need = TENSORFLOW_MB * 2**20 + BYTES_PER_PARAMETER * at(0) + factor * 4 * batch_size * at(1)
    return math.ceil(need / 2**20)


if __name__ == "__main__":
    measured = measure_footprints()
    lines = [f"  {json.dumps(key)}: {json.dumps(counts, sort_keys=True)}" for key, counts in sorted(measured.items())]
    FOOTPRINTS_FILE.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"{len(measured)} footprints written to {FOOTPRINTS_FILE}", file=sys.stderr)
