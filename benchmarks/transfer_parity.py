"""Transfer parity (issue #45): the tutorial's VGG16 transfer code (benchmarks/tutorial_code.py) beside
convbench's studies/cifar10-transfer-tutorial.yaml, a few training steps per phase on the same batches.

    python benchmarks/transfer_parity.py [--images 2000] [--steps 3]

What both sides share, so that any difference is the recipe's:
- the base's weights: one VGG16 no-top weights file, made here with seeded random weights (ImageNet's are not
  reachable offline) in keras.applications' file format; each side loads it the way it loads ImageNet's
  (the tutorial's `VGG16(weights=...)`, the study's `transfer_learning.weights`);
- the head's starting weights and its dropout seed: convbench's are copied into the tutorial's model (two
  programs seed their layers differently);
- the batches: CIFAR-sized generated images (32x32x3, 10 classes, uint8), the first `steps` batches of 32 of
  them, in the same order (each side's fit would shuffle with its own generator).
Each side runs its own code for the rest. The tutorial's: `vgg16_transfer`, then `fit_transfer_phase1` and
`fit_transfer_phase2` with `model.fit` replaced by `steps` train_on_batch calls on the shared batches (its
compile calls, freezing and fit arguments run as written; the arguments are printed). Its input gets the
study's one stated deviation: each image is resized to 224 px (bilinear) and passed through VGG16's
preprocess_input, which the tutorial's code cannot do as written (a 32 px image does not fit a 224 px input).
convbench's: the study's settings (config.yaml, then the study), `create_model` of its transfer architecture,
`compile_model`, and for phase 2 `unfreeze_last` and `compile_model` as `fit_phases` calls them; its batches
are scaled and resized as its input pipeline does (InputPreparation), and converted for VGG16 inside its model.
Prints, per phase, each side's trainable parameters, optimizer and learning rate, and the loss of every step.
"""

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "workflow"))
STUDY, ARCH, BATCH = PROJECT / "studies" / "cifar10-transfer-tutorial.yaml", "vgg16_imagenet", 32


def tutorial_code():
    spec = importlib.util.spec_from_file_location("tutorial_code", PROJECT / "benchmarks" / "tutorial_code.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def study_settings():
    from convbench.base.config import experiment_settings, merge_settings
    from snakemake.utils import validate

    config = merge_settings(yaml.safe_load((PROJECT / "config.yaml").read_text()), yaml.safe_load(STUDY.read_text()))
    validate(config, str(PROJECT / "workflow" / "schemas" / "config.schema.yaml"))  # its defaults, as the workflow's
    return config, experiment_settings(config, "cifar10", ARCH)


def generated_images(count, seed=0):
    """CIFAR-sized images whose class shows in their colour and texture, and their one-hot labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    base = rng.integers(0, 256, (10, 1, 1, 3))[labels]
    noise = rng.integers(-40, 41, (count, 32, 32, 3))
    images = np.clip(base + noise, 0, 255).astype(np.uint8)
    return images, np.eye(10, dtype="float32")[labels]


def write_weights(path):
    """Seeded random VGG16 no-top weights in the format keras.applications publishes (Keras 2 HDF5)."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(45)
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(224, 224, 3))
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, base)


def trainable_parameters(model):
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def optimizer_facts(model):
    optimizer = model.optimizer
    return f"{type(optimizer).__name__} {float(optimizer.learning_rate.numpy()):g}"


def head_layers(model):
    """The head's Dense and Dropout layers, in order (the base is one nested layer: none of its own are listed)."""
    import keras

    return [layer for layer in model.layers if isinstance(layer, (keras.layers.Dense, keras.layers.Dropout))]


def head_state(model):
    """The head's starting point: each Dense layer's weights, each Dropout layer's seed state."""
    return [layer.get_weights() if not hasattr(layer, "seed_generator") else layer.seed_generator.state.numpy()
            for layer in head_layers(model)]


def set_head_state(model, state):
    for layer, value in zip(head_layers(model), state, strict=True):
        if hasattr(layer, "seed_generator"):
            layer.seed_generator.state.assign(value)
        else:
            layer.set_weights(value)


def convbench_side(weights, images, labels, steps):
    """(rows per phase, model): convbench's own calls for the study's recipe."""
    import tensorflow as tf
    from convbench.models.architectures import create_model
    from convbench.models.transfer import transfer_architectures, unfreeze_last
    from convbench.train.augmentation import InputPreparation
    from convbench.train.training import Phases, compile_model

    config, settings = study_settings()
    arch = transfer_architectures({ARCH: {**config["transfer_learning"][ARCH], "weights": str(weights)}})[ARCH]
    phases = Phases.of(settings, arch.transfer)
    model = create_model(arch, (32, 32, 3), 10, input_size=settings.get("input_size"), weights=str(weights))
    manifest = {"preprocessing": {"offset": [0.0] * 3, "scale": [1 / 255] * 3}, "input_shape": [32, 32, 3]}
    prepare = InputPreparation(manifest, None, 1, settings.get("input_size"), phases.total)
    batches = [(prepare(tf.constant(images[i:i + BATCH]), 0, 0, training=False).numpy(), labels[i:i + BATCH])
               for i in range(0, steps * BATCH, BATCH)]
    steps_per_epoch = len(images) // settings["batch_size"]
    compile_model(model, settings, settings["learning_rate"], settings.get("schedule", "constant"), steps_per_epoch,
                  settings["epochs"])
    start = head_state(model)
    rows, seconds = {}, {}
    rows["phase 1"] = (trainable_parameters(model), optimizer_facts(model), settings["epochs"],
                       timed_steps(model, batches, seconds, "phase 1"))
    unfreeze_last(model, phases.fine_tune["layers"])
    compile_model(model, {**settings, "warmup_epochs": 0}, phases.fine_tune["learning_rate"], "constant",
                  steps_per_epoch, 1)
    rows["phase 2"] = (trainable_parameters(model), optimizer_facts(model), phases.fine_tune["epochs"],
                       timed_steps(model, batches, seconds, "phase 2"))
    seconds["validation image"] = timed_inference(model, batches[0][0])
    return rows, start, seconds, settings


def timed_steps(model, batches, seconds, phase):
    """Each batch's loss; seconds[phase]: the median time of a step after the first (which traces the step)."""
    losses, times = [], []
    for x, y in batches:
        begun = time.perf_counter()
        losses.append(float(model.train_on_batch(x, y)[0]))
        times.append(time.perf_counter() - begun)
    seconds[phase] = statistics.median(times[1:] or times)
    return losses


def timed_inference(model, x):
    """Seconds per image of a forward pass (what validation costs), the second of two calls."""
    model.predict_on_batch(x)
    begun = time.perf_counter()
    model.predict_on_batch(x)
    return (time.perf_counter() - begun) / len(x)


def tutorial_side(weights, images, labels, steps, head_start):
    """Rows per phase: the tutorial's code, its fit replaced by `steps` steps on the shared batches."""
    import tensorflow as tf
    from keras.applications.vgg16 import preprocess_input

    code = tutorial_code()
    model, base = code.vgg16_transfer(weights=str(weights))
    set_head_state(model, head_start)  # the head as convbench's started, and its dropout seed
    x = preprocess_input(tf.image.resize(images[:steps * BATCH].astype("float32") / 255.0, (224, 224)).numpy() * 255.0)
    rows, calls = {}, []

    def stepping_fit(x_train, y_train, **arguments):
        calls.append(arguments)
        return [float(model.train_on_batch(x_train[i:i + BATCH], y_train[i:i + BATCH])[0])
                for i in range(0, steps * BATCH, BATCH)]

    model.fit = stepping_fit
    losses = code.fit_transfer_phase1(model, x, labels[:steps * BATCH])
    rows["phase 1"] = (trainable_parameters(model), optimizer_facts(model), calls[-1]["epochs"], losses)
    losses = code.fit_transfer_phase2(model, base, x, labels[:steps * BATCH])
    rows["phase 2"] = (trainable_parameters(model), optimizer_facts(model), calls[-1]["epochs"], losses)
    return rows, calls


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    from convbench.base.runtime import configure_tensorflow, cpu_model

    configure_tensorflow(threads=2, seed=1, deterministic=True)  # before anything starts TensorFlow
    images, labels = generated_images(args.images)
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
        write_weights(weights)
        ours, head_start, seconds, settings = convbench_side(weights, images, labels, args.steps)
        theirs, calls = tutorial_side(weights, images, labels, args.steps, head_start)
    print(f"CPU: {cpu_model()}, 2 threads; {args.images} generated 32x32x3 images, the first {args.steps} batches "
          f"of {BATCH} per phase")
    print(f"The tutorial's fit arguments, as its code passes them: {calls}")
    print("| phase | | trainable parameters | optimizer | epochs | " +
          " | ".join(f"loss, step {step + 1}" for step in range(args.steps)) + " |")
    print("|---|---|---|---|---|" + "---|" * args.steps)
    worst = 0.0
    for phase in ours:
        for side, rows in (("tutorial's code", theirs), ("convbench", ours)):
            count, optimizer, epochs, losses = rows[phase]
            print(f"| {phase} | {side} | {count:,} | {optimizer} | {epochs} | " +
                  " | ".join(f"{loss:.6f}" for loss in losses) + " |")
        worst = max(worst, *(abs(a - b) / abs(b) for a, b in zip(ours[phase][3], theirs[phase][3])))
    print(f"\nLargest relative difference of a step's loss: {worst:.1e}")
    # A full run: CIFAR-10's 50,000 training images, the last 20 % held out for validation, as the study trains
    train, val, batch = 40_000, 10_000, settings["batch_size"]
    epochs = {"phase 1": settings["epochs"], "phase 2": ours["phase 2"][2]}
    total = sum(epochs[phase] * (-(-train // batch) * seconds[phase] + val * seconds["validation image"])
                for phase in epochs)
    print(f"convbench's step at batch {batch}: phase 1 {seconds['phase 1']:.2f} s, phase 2 {seconds['phase 2']:.2f} s; "
          f"a forward pass {seconds['validation image'] * 1000:.0f} ms per image. A full CIFAR-10 run of the study "
          f"(40,000 training and 10,000 validation images, {epochs['phase 1']} + {epochs['phase 2']} epochs) would "
          f"take about {total / 3600:.0f} h on this CPU, the test split's evaluation aside.")


if __name__ == "__main__":
    main()
