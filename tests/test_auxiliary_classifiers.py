"""training.auxiliary_classifiers: GoogLeNet's training-only classifiers (Szegedy et al. 2015, Section 5),
trained on main + 0.3 x auxiliary losses, scored and saved as the main classifier alone."""

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from convbench.base.atomic import read_json
from convbench.models.architectures import Architecture, check_auxiliary_classifiers, create_model, get_architecture
from convbench.evaluate.inference import split_batches
from convbench.models.study import resolve_architectures
from convbench.train.auxiliary import AUXILIARY_LOSS_WEIGHT, AuxiliaryTraining
from test_training import resumes_identically, run


def test_googlenets_auxiliary_classifiers_are_section_5s():
    """At 224 px and 1000 classes: 4x4x512 and 4x4x528 after the 5x5/3 average pooling, then 1x1x128,
    fully connected 1024, dropout 0.7, softmax; every layer of the network shared."""
    arch = get_architecture("googlenet")
    network = create_model(arch, (224, 224, 3), 1000, input_size=224)
    training = arch.auxiliary(network)
    assert [tuple(output.shape[1:]) for output in training.outputs] == [(1000,)] * 3
    for number, channels in [(1, 512), (2, 528)]:
        assert training.get_layer(f"auxiliary_{number}_avg_pool").output.shape[1:] == (4, 4, channels)
        assert training.get_layer(f"auxiliary_{number}_drop").rate == 0.7
    conv = {1: 512 * 128 + 128, 2: 528 * 128 + 128}
    head = 4 * 4 * 128 * 1024 + 1024 + 1024 * 1000 + 1000
    assert training.count_params() - network.count_params() == conv[1] + conv[2] + 2 * head  # 6,379,728
    assert all(network.get_layer(layer.name) is layer for layer in network.layers if training.get_layer(layer.name))


def test_below_80_px_the_pooling_window_is_the_whole_map():
    training = get_architecture("googlenet").auxiliary(create_model("googlenet", (32, 32, 1), 10, input_size=32))
    assert training.get_layer("auxiliary_1_avg_pool").output.shape[1:] == (1, 1, 512)


def two_headed_model():
    """A small model with a main and one auxiliary softmax and no randomness, so one step can be redone by hand."""
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="relu")(inputs)
    main = keras.layers.Dense(3, activation="softmax")(hidden)
    auxiliary = keras.layers.Dense(3, activation="softmax")(hidden)
    return AuxiliaryTraining.around(keras.Model(inputs, [main, auxiliary], name="two_headed"))


def test_one_step_minimises_main_plus_0_3_auxiliary_and_reports_each_part():
    keras.utils.set_random_seed(1)
    model = two_headed_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    y = keras.utils.to_categorical(np.arange(16) % 3, 3)
    crossentropy = keras.losses.CategoricalCrossentropy()

    def losses(outputs):
        return [float(crossentropy(y, output)) for output in outputs]

    before = [weight.numpy() for weight in model.trainable_weights]
    with tf.GradientTape() as tape:
        main, auxiliary = model(x, training=True)
        objective = crossentropy(y, main) + AUXILIARY_LOSS_WEIGHT * crossentropy(y, auxiliary)
    gradients = tape.gradient(objective, model.trainable_weights)
    main_before, auxiliary_before = losses(model(x))

    history = model.fit(x, y, batch_size=16, epochs=1, validation_data=(x, y), verbose=0).history
    for start, gradient, after in zip(before, gradients, model.trainable_weights, strict=True):
        np.testing.assert_allclose(after.numpy(), start - 0.5 * gradient.numpy(), rtol=1e-5, atol=1e-6)
    main_after, auxiliary_after = losses(model(x))
    np.testing.assert_allclose(history["loss"], [main_before], rtol=1e-6)
    np.testing.assert_allclose(history["auxiliary_loss"], [AUXILIARY_LOSS_WEIGHT * auxiliary_before], rtol=1e-6)
    np.testing.assert_allclose(history["val_loss"], [main_after], rtol=1e-6)  # the main classifier alone
    np.testing.assert_allclose(history["val_auxiliary_loss"], [AUXILIARY_LOSS_WEIGHT * auxiliary_after], rtol=1e-6)
    main_accuracy = np.mean(np.argmax(model(x)[0], axis=1) == np.argmax(y, axis=1))
    np.testing.assert_allclose(history["val_accuracy"], [main_accuracy])


def tiny_network(input_shape, num_classes):
    """A small network with an auxiliary classifier to attach on its layer `middle`."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="middle")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x))
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny")


def tiny_auxiliary(network):
    x = keras.layers.GlobalAveragePooling2D(name="auxiliary_1_pool")(network.get_layer("middle").output)
    auxiliary = keras.layers.Dense(network.output.shape[-1], activation="softmax", name="auxiliary_1_predictions")(x)
    return keras.Model(network.inputs, [network.output, auxiliary], name=network.name)


TINY = Architecture("tiny", tiny_network, min_size=8, auxiliary=tiny_auxiliary)


@pytest.mark.parametrize("augment_on", ["input", "model"])
def test_a_network_trained_with_them_is_saved_and_scored_without_them(tmp_path, digits_prepared, augment_on):
    from convbench.models.saving import load_model

    keras.backend.clear_session()
    run(tmp_path, digits_prepared, arch=TINY, auxiliary_classifiers=True, augment_on=augment_on)
    out = tmp_path / "run"
    meta = read_json(out / "meta.json")
    assert meta["auxiliary_classifiers"] == {"count": 1, "loss_weight": 0.3}
    assert meta["augmented_on"] == augment_on
    saved = load_model(out / "model.keras")
    assert len(saved.outputs) == 1 and not any("auxiliary" in layer.name for layer in saved.layers)
    assert meta["parameters"] == saved.count_params() == tiny_network((28, 28, 1), 10).count_params()
    history = pd.read_csv(out / "history.csv")
    assert {"loss", "auxiliary_loss", "val_loss", "val_auxiliary_loss"} <= set(history.columns)
    # the recorded validation loss is the saved network's own on the validation split
    x_val, y_val = next(iter(split_batches(digits_prepared, "val", 10_000, with_labels=True)))
    val_loss = float(keras.losses.CategoricalCrossentropy()(y_val, saved.predict(x_val, verbose=0)))
    assert history["val_loss"].iloc[-1] == pytest.approx(val_loss, rel=1e-4)


def test_without_the_setting_they_are_left_out(tmp_path, digits_prepared):
    keras.backend.clear_session()
    run(tmp_path, digits_prepared, arch=TINY, epochs=1)
    assert read_json(tmp_path / "run" / "meta.json")["auxiliary_classifiers"] is None
    assert "auxiliary_loss" not in pd.read_csv(tmp_path / "run" / "history.csv").columns


@pytest.mark.slow  # three short trainings
def test_a_killed_run_with_them_resumes_identically(tmp_path, digits_prepared):
    """The checkpoint holds AuxiliaryTraining (heads, optimizer, trackers) and restores it bitwise."""
    resumes_identically(tmp_path, digits_prepared, arch=TINY, epochs=3, auxiliary_classifiers=True)


def test_a_study_asking_for_them_needs_an_architecture_that_has_them():
    architectures = resolve_architectures()
    check_auxiliary_classifiers(architectures, ["simple_cnn", "googlenet"], {"auxiliary_classifiers": True}, "here")
    check_auxiliary_classifiers(architectures, ["simple_cnn"], {"auxiliary_classifiers": False}, "here")
    with pytest.raises(ValueError, match="here: auxiliary_classifiers: none of the study's architectures "
                                         r"\(simple_cnn, lenet5\) has auxiliary classifiers; googlenet does"):
        check_auxiliary_classifiers(architectures, ["simple_cnn", "lenet5"], {"auxiliary_classifiers": True}, "here")


MIRRORED = """
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from test_auxiliary_classifiers import two_headed_model

x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
y = keras.utils.to_categorical(np.arange(16) % 3, 3)
results = {}
for name, strategy in [("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                       ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = two_headed_model()
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=2, validation_data=(x, y), verbose=0, shuffle=False).history
    results[name] = {"history": history, "weights": [w.tolist() for w in model.get_weights()],
                     "replicas": strategy.num_replicas_in_sync}
print(json.dumps(results))
"""


@pytest.mark.slow  # TensorFlow in a subprocess with two logical devices
def test_two_replicas_log_and_train_as_one_device():
    """What a job given several GPUs runs (tf.distribute divides compiled losses by the replicas; the logged
    losses and the update must not be)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from convbench.tune.trial import child_environment

    tests = str(Path(__file__).parent)
    env = child_environment()
    env["PYTHONPATH"] = tests + ":" + env["PYTHONPATH"]
    result = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    one, mirrored = runs["one"], runs["mirrored"]
    assert mirrored["replicas"] == 2
    assert set(one["history"]) == {"loss", "accuracy", "auxiliary_loss", "val_loss", "val_accuracy",
                                   "val_auxiliary_loss"}
    for key, values in one["history"].items():
        np.testing.assert_allclose(mirrored["history"][key], values, rtol=1e-5, err_msg=key)
    for a, b in zip(one["weights"], mirrored["weights"], strict=True):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-5, atol=1e-6)
