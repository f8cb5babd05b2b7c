"""Training engine: seeded per-epoch order, outputs, determinism, divergence."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from convbench.base.atomic import read_json
from convbench.base.runtime import seed_everything
from convbench.train.training import TrainingDiverged, train_experiment, training_dataset

MANIFEST = {"input_shape": [1, 1, 1], "preprocessing": {"offset": [0.0], "scale": [1.0]}}


def batches(first_epoch, epochs, seed=7, n=10, batch_size=4):
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    ds = training_dataset(images, np.arange(n) % 2, MANIFEST, num_classes=2, batch_size=batch_size, seed=seed,
                          first_epoch=first_epoch, epochs=epochs)
    return [x.numpy().ravel().astype(int).tolist() for x, _ in ds]


@pytest.mark.parametrize("scaling", ["unit", "standardize", "mean_subtraction"])
def test_training_batches_are_scaled_as_evaluation_scales(scaling):
    """The per-pixel offset of mean subtraction broadcasts in the tf.data pipeline as in NumPy."""
    from convbench.data.datasets import scaling_parameters
    from convbench.data.prepared import scale_images

    images = np.random.default_rng(0).integers(0, 256, (12, 5, 5, 3), np.uint8)
    offset, scale = scaling_parameters(images, scaling)
    manifest = {"input_shape": [5, 5, 3], "preprocessing": {"offset": offset, "scale": scale}}
    ds = training_dataset(images, np.arange(12) % 2, manifest, num_classes=2, batch_size=12, seed=1, first_epoch=0,
                          epochs=1)
    [(x, _)] = list(ds)
    expected = scale_images(images, manifest)
    batch = x.numpy()
    order = [int(np.flatnonzero((expected == row).all(axis=(1, 2, 3)))[0]) for row in batch]  # the epoch's shuffle
    np.testing.assert_allclose(batch, expected[order], atol=1e-6)


def test_each_epoch_is_a_full_seeded_permutation():
    stream = batches(0, 3)
    assert len(stream) == 3 * math.ceil(10 / 4)
    epochs = [sum(stream[i : i + 3], []) for i in (0, 3, 6)]
    assert all(sorted(epoch) == list(range(10)) for epoch in epochs)
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    assert batches(0, 3) == stream  # same seed, same order
    assert batches(0, 3, seed=8) != stream


def test_a_resumed_run_replays_the_same_order():
    assert batches(2, 3) == batches(0, 3)[6:]


def small_settings(**changes):
    return {"epochs": 2, "batch_size": 64, "optimizer": "adam", "learning_rate": 1e-3, "deterministic": True,
            "augmentation": {**OFF, "rotation_range": 5}, **changes}


def run(tmp_path, data, name="run", arch="simple_cnn", tensorboard=None, checkpoint_interval=0.0, in_memory=True,
        **changes):
    out = tmp_path / name
    seed_everything(3)
    model = train_experiment(
        data, arch, seed=3, settings=small_settings(**changes), strategy=tf.distribute.get_strategy(),
        model_path=out / "model.keras", history_path=out / "history.csv", meta_path=out / "meta.json",
        checkpoint_dir=out / "checkpoint", tensorboard=tensorboard, checkpoint_interval=checkpoint_interval,
        in_memory=in_memory,
    )
    return model, out


def test_outputs_and_metadata(tmp_path, digits_prepared):
    model, out = run(tmp_path, digits_prepared)
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert {"accuracy", "loss", "val_accuracy", "val_loss", "seconds"} <= set(history.columns)
    meta = read_json(out / "meta.json")
    assert meta["parameters"] == model.count_params()
    assert meta["epochs_run"] == 2 and 1 <= meta["best_epoch"] <= 2
    assert meta["seed"] == 3 and len(meta["config_hash"]) == 12
    assert meta["batchnorm_fused_layers"] == 0  # simple_cnn has none
    assert meta["images_per_second"] > 0 and meta["environment"]["tensorflow"] == tf.__version__


def test_reading_the_shards_per_batch_trains_the_same_weights_as_holding_them_in_memory(tmp_path, digits_prepared):
    """The path for data larger than memory: same batches, so the same model, bit for bit."""
    in_memory, _ = run(tmp_path, digits_prepared, "memory")
    streamed, out = run(tmp_path, digits_prepared, "streamed", in_memory=False)
    for a, b in zip(in_memory.get_weights(), streamed.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert read_json(out / "meta.json")["training_data"] == "read from its shards per batch"


def test_two_runs_are_bitwise_identical(tmp_path, digits_prepared):
    first, _ = run(tmp_path, digits_prepared, "a")
    second, _ = run(tmp_path, digits_prepared, "b")
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_divergence_fails_with_a_clear_message(tmp_path, digits_prepared):
    with pytest.raises(TrainingDiverged, match="loss became NaN"):
        run(tmp_path, digits_prepared, "nan", arch="simple_cnn", learning_rate=1e12, optimizer="sgd")
    assert not (tmp_path / "nan" / "model.keras").exists()


OFF = {"rotation_range": 0, "width_shift_range": 0, "height_shift_range": 0, "shear_range": 0, "zoom_range": 0,
       "horizontal_flip": False, "fill_mode": "nearest"}


def test_no_augmentation_unless_asked():
    from convbench.train.training import make_augmentation

    assert make_augmentation(OFF, seed=1) is None
    layers = make_augmentation({**OFF, "rotation_range": 10, "zoom_range": 0.1, "horizontal_flip": True}, seed=1)
    assert [type(layer).__name__ for layer in layers.layers] == ["RandomFlip", "RandomRotation", "RandomZoom"]


def augmented_batches(seed, first_epoch=0):
    images = np.tile(np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1) * 4, (6, 1, 1, 1))
    settings = {**OFF, "rotation_range": 30, "width_shift_range": 0.2, "shear_range": 10}
    ds = training_dataset(images, np.arange(6) % 2, MANIFEST, num_classes=2, batch_size=3, seed=seed,
                          first_epoch=first_epoch, epochs=3, augmentation=settings)
    return images, [x.numpy() for x, _ in ds]


def test_augmentation_changes_training_images_reproducibly():
    images, first = augmented_batches(5)
    _, again = augmented_batches(5)
    assert all(a.shape == (3, 8, 8, 1) for a in first)
    assert not np.allclose(np.sort(first[0], axis=None), np.sort(images[:3], axis=None))  # transformed
    assert all(np.array_equal(a, b) for a, b in zip(first, again))  # same seed, same draws
    _, resumed = augmented_batches(5, first_epoch=1)
    assert all(np.array_equal(a, b) for a, b in zip(first[2:], resumed))  # epoch 2 on, as uninterrupted


def zip_contents(path):
    """{member: bytes} of a .keras archive (zip timestamps aside)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


class Killed(Exception):
    pass


def run_killed_after_second_epoch(tmp_path, data, name, **changes):
    """A training job killed (an exception) right after its second epoch's checkpoint."""
    import keras

    class KillAfterSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise Killed

    original_fit = keras.Model.fit
    keras.Model.fit = lambda self, *a, callbacks=(), **k: original_fit(
        self, *a, callbacks=[*callbacks, KillAfterSecondEpoch()], **k)
    try:
        with pytest.raises(Killed):
            run(tmp_path, data, name, **changes)
    finally:
        keras.Model.fit = original_fit


def resumes_identically(tmp_path, data, **changes):
    """Train whole, then killed after epoch 2 and resumed: asserts the resumed run's weights equal the whole
    run's bitwise, and returns the resumed run's folder."""
    import keras

    keras.backend.clear_session()
    reference, _ = run(tmp_path, data, "whole", **changes)
    keras.backend.clear_session()
    run_killed_after_second_epoch(tmp_path, data, "killed", **changes)
    keras.backend.clear_session()
    resumed, out = run(tmp_path, data, "killed", **changes)
    assert read_json(out / "meta.json")["resumed_after_epoch"] == 2
    for a, b in zip(reference.get_weights(), resumed.get_weights(), strict=True):
        assert np.array_equal(a, b)
    return out


@pytest.mark.parametrize("in_memory", [True, False], ids=["in memory", "read from the shards"])
def test_a_killed_run_resumes_at_the_next_epoch_with_identical_weights(tmp_path, digits_prepared, in_memory):
    """Compared with an uninterrupted run holding the data in memory, however the killed one read it."""
    import keras

    keras.backend.clear_session()  # each run starts as a job does, with fresh layer-name counters
    reference, _ = run(tmp_path, digits_prepared, "whole", epochs=3)

    out = tmp_path / "killed"
    keras.backend.clear_session()
    run_killed_after_second_epoch(tmp_path, digits_prepared, "killed", epochs=3, in_memory=in_memory)
    keras.backend.clear_session()
    assert read_json(out / "checkpoint" / "state.json")["epoch"] == 2 and not (out / "model.keras").exists()
    resumed, _ = run(tmp_path, digits_prepared, "killed", epochs=3, in_memory=in_memory)
    meta = read_json(out / "meta.json")
    assert meta["resumed_after_epoch"] == 2 and meta["threads"] >= 1
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1, 2, 3]
    for a, b in zip(reference.get_weights(), resumed.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert not (out / "checkpoint").exists()  # cleaned up once the outputs are written
    whole, killed = (zip_contents(tmp_path / name / "model.keras") for name in ("whole", "killed"))
    assert whole.pop("metadata.json") != b"" and killed.pop("metadata.json") != b""  # holds the save date
    assert whole == killed  # config and weights the same, byte for byte
    assert (tmp_path / "whole" / "model.keras").stat().st_size == (out / "model.keras").stat().st_size


@pytest.mark.slow  # trains the model whole, killed and resumed; the unit tier keeps the plain kill test
def test_batchnorm_trains_on_the_fused_kernel_and_resumes_identically(tmp_path, digits_prepared):
    import keras

    keras.backend.clear_session()
    reference, out = run(tmp_path, digits_prepared, "whole", arch="bn_cnn", epochs=3, batch_size=128)
    assert read_json(out / "meta.json")["batchnorm_fused_layers"] == 7  # all of bn_cnn's
    keras.backend.clear_session()
    run_killed_after_second_epoch(tmp_path, digits_prepared, "killed", arch="bn_cnn", epochs=3, batch_size=128)
    keras.backend.clear_session()
    resumed, _ = run(tmp_path, digits_prepared, "killed", arch="bn_cnn", epochs=3, batch_size=128)
    for a, b in zip(reference.get_weights(), resumed.get_weights(), strict=True):  # moving statistics included
        assert np.array_equal(a, b)


def tensorboard_events(directory):
    """{(run, tag): [(step, value), ...]} of a TensorBoard log folder, and whether it holds a graph."""
    scalars, graph = {}, False
    for path in sorted(Path(directory).rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            graph |= bool(event.graph_def)
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)  # a histogram's is its buckets
                scalars.setdefault((path.parent.name, value.tag), []).append(
                    (event.step, array.item() if array.ndim == 0 else array))
    return scalars, graph


@pytest.mark.slow  # trains the model whole, killed and resumed; the unit tier keeps the plain kill test
def test_tensorboard_logs_every_epoch_once_across_a_kill_and_resume(tmp_path, digits_prepared):
    import keras

    logs = {"directory": tmp_path / "tb", "graph": True, "histograms": True}
    keras.backend.clear_session()
    run_killed_after_second_epoch(tmp_path, digits_prepared, "killed", epochs=3, schedule="cosine", tensorboard=logs)
    scalars, graph = tensorboard_events(logs["directory"])
    assert graph and [step for step, _ in scalars[("train", "epoch_loss")]] == [1, 2]  # live, before the kill
    keras.backend.clear_session()
    run(tmp_path, digits_prepared, "killed", epochs=3, schedule="cosine", tensorboard=logs)

    scalars, graph = tensorboard_events(logs["directory"])
    history = pd.read_csv(tmp_path / "killed" / "history.csv")
    assert graph
    expected = {("train", "epoch_loss"): "loss", ("train", "epoch_accuracy"): "accuracy",
                ("validation", "epoch_loss"): "val_loss", ("validation", "epoch_accuracy"): "val_accuracy",
                ("train", "epoch_learning_rate"): "learning_rate"}
    for key, column in expected.items():
        assert [step for step, _ in scalars[key]] == [1, 2, 3], key  # each epoch exactly once
        np.testing.assert_allclose([value for _, value in scalars[key]], history[column], rtol=1e-6)
    rates = [value for _, value in scalars[("train", "epoch_learning_rate")]]
    assert rates[0] > rates[1] > rates[2]  # the cosine schedule, as the optimizer had it
    speed = [value for _, value in scalars[("train", "images_per_second")]]
    np.testing.assert_allclose(speed, len(digits_prepared.raw("train")[1]) / history["seconds"], rtol=1e-6)
    histograms = {tag for (run_name, tag) in scalars if run_name == "train" and tag.endswith("kernel")}
    assert histograms and all([step for step, _ in scalars[("train", tag)]] == [3] for tag in histograms)


@pytest.mark.slow  # trains the model whole, killed and resumed; the unit tier keeps the plain kill test
def test_epochs_shorter_than_the_checkpoint_interval_are_not_saved(tmp_path, digits_prepared):
    """checkpoints.min_interval_s: a run killed before the interval passed has nothing to resume and
    trains again from the start, to the same weights."""
    import keras

    keras.backend.clear_session()
    reference, _ = run(tmp_path, digits_prepared, "whole", epochs=3)
    keras.backend.clear_session()
    run_killed_after_second_epoch(tmp_path, digits_prepared, "killed", epochs=3, checkpoint_interval=3600)
    out = tmp_path / "killed"
    assert not (out / "checkpoint" / "state.json").exists()
    keras.backend.clear_session()
    again, _ = run(tmp_path, digits_prepared, "killed", epochs=3, checkpoint_interval=3600)
    assert read_json(out / "meta.json")["resumed_after_epoch"] == 0
    for a, b in zip(reference.get_weights(), again.get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_a_checkpoint_from_another_thread_count_is_not_resumed(tmp_path, digits_prepared):
    from convbench.base.atomic import write_json
    from convbench.train.checkpoints import CheckpointMismatch

    out = tmp_path / "killed"
    run_killed_after_second_epoch(tmp_path, digits_prepared, "killed", epochs=3)
    state = read_json(out / "checkpoint" / "state.json")
    assert state["runtime"]["threads"] >= 1 and state["runtime"]["precision"] == "float32"
    state["runtime"]["threads"] += 3  # as if written by a job that Snakemake gave more threads (--cores)
    write_json(out / "checkpoint" / "state.json", state)
    with pytest.raises(CheckpointMismatch, match=r"threads \d+ -> \d+.*same --cores"):
        run(tmp_path, digits_prepared, "killed", epochs=3)
    assert (out / "checkpoint" / "state.json").exists()  # kept: the right job can still resume it


def test_two_writers_leave_a_consistent_checkpoint_and_the_older_one_stops(tmp_path):
    """An orphaned attempt (node unreachable) still training while its resubmission runs."""
    import keras
    from convbench.train.checkpoints import CheckpointTakenOver, EpochCheckpoint, restore_checkpoint
    from convbench.train.training import EpochTimer

    def writer():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(optimizer="adam", loss="mse")
        timer = EpochTimer(1)
        timer.seconds = [0.1]
        checkpoint = EpochCheckpoint(tmp_path / "ckpt", "same-settings", timer)
        checkpoint.set_model(model)
        return checkpoint, model

    orphan, _ = writer()
    orphan.on_epoch_end(0, {"loss": 1.0})
    orphan.on_epoch_end(1, {"loss": 0.9})
    resubmitted, model = writer()  # resumes and claims the checkpoint
    resubmitted.on_epoch_end(2, {"loss": 0.8})
    with pytest.raises(CheckpointTakenOver):
        orphan.on_epoch_end(2, {"loss": 0.5})  # the orphan stops instead of overwriting
    restored, resumed = restore_checkpoint(tmp_path / "ckpt", "same-settings")
    state = read_json(tmp_path / "ckpt" / "state.json")
    assert state["name"].startswith(resubmitted.attempt) and state["epoch"] == 3
    assert [np.array_equal(a, b) for a, b in zip(restored.get_weights(), model.get_weights())] == [True, True]
    assert sorted(path.name for path in (tmp_path / "ckpt").glob("attempt-*")) == [resubmitted.attempt]  # the orphan's files are gone


def test_merged_overrides_keep_the_other_knobs():
    from convbench.base.config import merge_settings

    merged = merge_settings({"epochs": 5, "augmentation": OFF}, {"augmentation": {"zoom_range": 0.1}})
    assert merged["epochs"] == 5 and merged["augmentation"] == {**OFF, "zoom_range": 0.1}


MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from convbench.data.datasets import export_digits, prepare_dataset
from convbench.data.prepared import load_prepared
from convbench.base.runtime import seed_everything
from convbench.train.training import train_experiment
out = sys.argv[1]
export_digits(out + "/digits.npz")
prepare_dataset("digits", [out + "/digits.npz"], "28x28x1", out + "/d", out + "/d.json", split_seed=0,
                test_fraction=0.2, validation_fraction=0.1, scaling="unit")
seed_everything(1)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
settings = {"epochs": 1, "batch_size": 64, "optimizer": "adam", "learning_rate": 1e-3, "deterministic": True,
            "augmentation": {"rotation_range": 5, "width_shift_range": 0, "height_shift_range": 0, "shear_range": 0,
                             "zoom_range": 0, "horizontal_flip": False, "fill_mode": "nearest"}}
train_experiment(load_prepared(out + "/d", out + "/d.json"), "bn_cnn", seed=1, settings=settings,
                 strategy=strategy, model_path=out + "/m.keras", history_path=out + "/h.csv",
                 meta_path=out + "/meta.json", checkpoint_dir=out + "/ckpt")
print("replicas", strategy.num_replicas_in_sync)
"""


@pytest.mark.slow  # TensorFlow in a subprocess with two logical devices
def test_training_under_mirrored_strategy(tmp_path):
    """What a job given several GPUs runs, here on two logical CPU devices."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2" in result.stdout
    assert read_json(tmp_path / "meta.json")["epochs_run"] == 1


def test_cosine_schedule_and_label_smoothing(tmp_path, digits_prepared):
    model, out = run(tmp_path, digits_prepared, "cosine", schedule="cosine", label_smoothing=0.1)
    schedule = model.optimizer.learning_rate
    assert float(model.optimizer.iterations) == 2 * 21  # 2 epochs of ceil(1293 / 64) steps
    assert float(schedule) < 1e-3 * 0.5  # decayed past half-way: cosine over all steps
    assert model.loss.label_smoothing == 0.1


def test_per_dataset_then_per_architecture_overrides():
    from convbench.base.config import experiment_settings

    config = {"training": {"epochs": 5, "learning_rate": 0.1, "augmentation": OFF},
              "dataset_options": {"cifar10": {"epochs": 50, "augmentation": {"horizontal_flip": True}}},
              "architecture_options": {"bn_cnn": {"learning_rate": 0.01}}}
    settings = experiment_settings(config, "cifar10", "bn_cnn")
    assert settings["epochs"] == 50 and settings["learning_rate"] == 0.01
    assert settings["augmentation"] == {**OFF, "horizontal_flip": True}
    assert experiment_settings(config, "mnist", "simple_cnn")["epochs"] == 5


def tiny_model(learning_rate=1e-3):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def test_early_stopping_counters_survive_a_restart():
    from convbench.train.checkpoints import ResumableEarlyStopping

    model = tiny_model()
    stopping = ResumableEarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    stopping.set_model(model)
    stopping.resume_from = {"wait": 1, "best": 0.2, "best_epoch": 3, "stopped_epoch": 0,
                            "best_weights": model.get_weights()}
    stopping.on_train_begin()
    stopping.on_epoch_end(5, {"val_loss": 0.3})  # second epoch without improvement: patience used up
    assert model.stop_training and stopping.best_epoch == 3
    assert stopping.state() == {"wait": 2, "best": 0.2, "best_epoch": 3, "stopped_epoch": 5}


def test_plateau_counters_survive_a_restart():
    from convbench.train.checkpoints import ResumablePlateau

    model = tiny_model(1e-3)
    plateau = ResumablePlateau(monitor="val_loss", factor=0.5, patience=2)
    plateau.set_model(model)
    plateau.resume_from = {"wait": 1, "best": 0.2, "cooldown_counter": 0}
    plateau.on_train_begin()
    plateau.on_epoch_end(5, {"val_loss": 0.3})
    assert float(model.optimizer.learning_rate) == pytest.approx(5e-4)


@pytest.mark.slow  # trains the model whole, killed and resumed; the unit tier keeps the plain kill test
def test_killed_run_with_plateau_and_early_stopping_resumes_identically(tmp_path, digits_prepared):
    options = dict(epochs=4, schedule="plateau", plateau={"factor": 0.5, "patience": 0, "min_learning_rate": 1e-6},
                   early_stopping={"enabled": True, "patience": 1, "restore_best_weights": True})
    reference, whole = run(tmp_path, digits_prepared, "whole", **options)

    run_killed_after_second_epoch(tmp_path, digits_prepared, "killed", **options)
    resumed, out = run(tmp_path, digits_prepared, "killed", **options)
    expected, got = pd.read_csv(whole / "history.csv"), pd.read_csv(out / "history.csv")
    assert "learning_rate" in got.columns
    pd.testing.assert_frame_equal(expected.drop(columns="seconds"), got.drop(columns="seconds"))
    for key in ("epochs_run", "weights_from_epoch", "stopped_early"):
        assert read_json(whole / "meta.json")[key] == read_json(out / "meta.json")[key]
    for a, b in zip(reference.get_weights(), resumed.get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_mixed_precision_keeps_the_softmax_in_float32():
    import keras
    from convbench.base.runtime import set_precision
    from convbench.models.architectures import create_model

    try:
        assert set_precision("auto")[0] == "float32"  # no GPU, and no architecture parity claimed here
        set_precision("mixed_bfloat16")
        model = create_model("bn_cnn", (28, 28, 1), 10)
        assert model.get_layer("predictions").compute_dtype == "float32"
        assert {layer.compute_dtype for layer in model.layers if "conv" in layer.name} == {"bfloat16"}
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        loss = model.train_on_batch(np.zeros((4, 28, 28, 1), np.float32), np.eye(10)[:4])
        assert np.isfinite(loss) and model(np.zeros((1, 28, 28, 1))).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_batchnorm_momentum_reaches_every_batchnorm_layer(tmp_path, digits_prepared):
    import keras

    model, _ = run(tmp_path, digits_prepared, "bn", arch="bn_cnn", epochs=1, batchnorm_momentum=0.8)
    momenta = {layer.momentum for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.8}
    from convbench.models.saving import load_model

    reloaded = load_model(tmp_path / "bn" / "model.keras")
    assert {layer.momentum for layer in reloaded.layers if isinstance(layer, keras.layers.BatchNormalization)} == {0.8}


def test_a_model_at_another_input_size_is_fed_resized_batches_everywhere(tmp_path, digits_prepared):
    """input_size: the model takes 40 px, the prepared data stays 28 px; training, evaluation and the
    figures resize per batch the same way."""
    from convbench.evaluate.evaluation import evaluate_experiment
    from convbench.evaluate.inference import class_probabilities, fit_to_model
    from convbench.evaluate.visualization import grad_cam

    model, out = run(tmp_path, digits_prepared, epochs=1, input_size=40)
    assert model.input_shape == (None, 40, 40, 1) and digits_prepared.input_shape == (28, 28, 1)
    meta = read_json(out / "meta.json")
    assert meta["input_shape"] == [40, 40, 1] and meta["data"]["input_shape"] == [28, 28, 1]
    metrics = evaluate_experiment(out / "model.keras", digits_prepared, out / "metrics.json", out / "p.npz")
    x_test, y_test = digits_prepared.scaled("test")
    resized = fit_to_model(x_test, model)
    assert resized.shape[1:] == (40, 40, 1)
    np.testing.assert_array_equal(np.load(out / "p.npz")["probabilities"], class_probabilities(model, x_test))
    direct = model.predict(resized, batch_size=256, verbose=0)
    np.testing.assert_allclose(np.load(out / "p.npz")["probabilities"], direct, atol=1e-6)
    assert metrics["accuracy"] == pytest.approx(np.mean(direct.argmax(1) == y_test))
    heat, _, _ = grad_cam(model, resized[:4])
    assert heat.shape[0] == 4


# ---------------------------------------------------------------- published recipes' knobs


def rates(schedule, steps):
    return [float(schedule(step)) if callable(schedule) else schedule for step in steps]


def test_step_schedule_lowers_the_rate_at_each_milestone_after_a_linear_warmup():
    from convbench.base.schedules import learning_rate_schedule

    settings = {"milestones": [2, 3], "gamma": 0.1, "warmup_epochs": 1}
    schedule = learning_rate_schedule(settings, 0.1, "step", steps_per_epoch=10, epochs=4)
    got = rates(schedule, [0, 4, 9, 10, 19, 20, 29, 30, 39])
    np.testing.assert_allclose(got, [0.01, 0.05, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-5)
    default = learning_rate_schedule({}, 0.1, "step", steps_per_epoch=10, epochs=4)  # after 50 % and 75 %
    np.testing.assert_allclose(rates(default, [19, 20, 29, 30]), [0.1, 0.01, 0.01, 0.001], rtol=1e-5)


def test_warmup_in_front_of_cosine_and_constant():
    from convbench.base.schedules import learning_rate_schedule

    cosine = learning_rate_schedule({"warmup_epochs": 1}, 0.1, "cosine", steps_per_epoch=10, epochs=3)
    got = rates(cosine, [0, 5, 10, 20, 29])
    assert got[0] < got[1] < got[2] == pytest.approx(0.1) and got[2] > got[3] > got[4] >= 0
    constant = learning_rate_schedule({"warmup_epochs": 2}, 0.1, "constant", steps_per_epoch=5, epochs=3)
    np.testing.assert_allclose(rates(constant, [0, 9, 10, 14]), [0.01, 0.1, 0.1, 0.1], rtol=1e-5)
    assert learning_rate_schedule({}, 0.1, "constant", steps_per_epoch=5, epochs=3) == 0.1


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_weight_decay_shrinks_weights_decoupled_from_the_gradient(optimizer):
    from convbench.train.training import make_optimizer

    settings = {"optimizer": optimizer, "weight_decay": 0.5, "momentum": 0.0}
    if optimizer != "sgd":
        settings.pop("momentum")
    weight = tf.Variable([2.0])
    make_optimizer(settings, 0.1).apply_gradients([(tf.zeros(1), weight)])
    assert float(weight[0]) == pytest.approx(2.0 * (1 - 0.1 * 0.5))  # w - lr x wd x w, with a zero gradient


def test_sgd_momentum_and_nesterov_are_settings():
    from convbench.train.training import make_optimizer

    sgd = make_optimizer({"optimizer": "sgd", "momentum": 0.8, "nesterov": False}, 0.1)
    assert sgd.momentum == pytest.approx(0.8) and sgd.nesterov is False
    default = make_optimizer({"optimizer": "sgd"}, 0.1)
    assert default.momentum == pytest.approx(0.9) and default.nesterov is True


def test_random_crop_keeps_the_size_and_draws_per_seed():
    from convbench.train.training import make_augmentation

    crop = {**OFF, "random_crop": {"padding": 4}}
    images = np.random.default_rng(0).random((8, 28, 28, 1), np.float32) + 0.5  # no zeros of their own
    first, again = (np.asarray(make_augmentation(crop, seed=7)(images, training=True)) for _ in range(2))
    other = np.asarray(make_augmentation(crop, seed=8)(images, training=True))
    assert first.shape == images.shape
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert (first == 0).any()  # some of the zero padding came into the window
    shifted = [np.argwhere(image[..., 0] != 0).min(axis=0).tolist() for image in first]
    assert len({tuple(corner) for corner in shifted}) > 1  # each image its own offset
    assert make_augmentation({**OFF, "random_crop": {"padding": 0}}, seed=7) is None


@pytest.mark.parametrize("case, message", [
    ({"optimizer": "adam", "momentum": 0.9}, "momentum applies to optimizer sgd only"),
    ({"schedule": "cosine", "milestones": [2]}, "milestones belong to schedule: step"),
    ({"schedule": "step", "milestones": [5]}, r"milestones \[5\] are not before the last epoch \(5\)"),
    ({"schedule": "plateau", "warmup_epochs": 1}, "warmup_epochs does not combine with schedule: plateau"),
    ({"warmup_epochs": 5}, "warmup_epochs 5 leaves no epoch after the warm-up"),
])
def test_recipe_settings_that_do_not_fit_together_are_refused(case, message):
    from convbench.base.validation import check_recipe

    with pytest.raises(ValueError, match=message):
        check_recipe({"epochs": 5, "optimizer": "sgd", "schedule": "step", **case}, "resnet20 on cifar10")


@pytest.mark.slow  # trains the model whole, killed and resumed; the unit tier keeps the plain kill test
def test_killed_run_with_step_schedule_warmup_and_random_crop_resumes_identically(tmp_path, digits_prepared):
    recipe = {"epochs": 3, "optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": False,
              "weight_decay": 1e-4, "schedule": "step", "milestones": [2], "gamma": 0.1, "warmup_epochs": 1,
              "augmentation": {**OFF, "random_crop": {"padding": 4}, "horizontal_flip": True}}
    out = resumes_identically(tmp_path, digits_prepared, **recipe)
    rates_seen = pd.read_csv(out / "history.csv")["learning_rate"]
    assert rates_seen[2] == pytest.approx(0.005)  # after the milestone, as the optimizer had it


# ---------------------------------------------------------------- precision: auto


AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"
AVX512_BF16 = "model name\t: AMD EPYC 9B14\nflags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 fma\n"
AMX = "model name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"


def test_bf16_units_are_detected_from_the_cpus_own_flags():
    from convbench.base.runtime import cpu_bf16_flags

    assert cpu_bf16_flags(AVX2_ONLY) == []
    assert cpu_bf16_flags(AVX512_BF16) == ["avx512_bf16"]
    assert cpu_bf16_flags(AMX) == ["amx_bf16", "avx512_bf16"]
    assert cpu_bf16_flags("") == []


@pytest.mark.parametrize("given, keeps, gpus, cpu, expected, why", [
    ("auto", True, 1, AMX, "mixed_float16", "1 GPU"),
    ("auto", True, 0, AMX, "mixed_bfloat16", "amx_bf16, avx512_bf16 and this architecture keeps its accuracy"),
    ("auto", False, 0, AMX, "float32", "parity is not shown for this architecture"),
    ("auto", True, 0, AVX2_ONLY, "float32", "no BF16 units"),
    ("mixed_bfloat16", False, 0, AVX2_ONLY, "mixed_bfloat16", "set in the config"),
])
def test_auto_precision_per_machine_and_architecture(given, keeps, gpus, cpu, expected, why):
    from convbench.base.runtime import choose_precision, cpu_bf16_flags

    precision, reason = choose_precision(given, keeps, gpus, cpu_bf16_flags(cpu))
    assert precision == expected and why in reason


@pytest.mark.slow  # trains the model whole, killed and resumed; the unit tier keeps the plain kill test
def test_killed_run_in_mixed_bfloat16_resumes_identically(tmp_path, digits_prepared):
    import keras
    from convbench.base.runtime import set_precision

    def fresh_job():  # as a training job starts: clean Keras state (which resets the policy), then the precision
        keras.backend.clear_session()
        set_precision("mixed_bfloat16")

    try:
        fresh_job()
        reference, _ = run(tmp_path, digits_prepared, "whole", epochs=3)
        fresh_job()
        run_killed_after_second_epoch(tmp_path, digits_prepared, "killed", epochs=3)
        fresh_job()
        resumed, out = run(tmp_path, digits_prepared, "killed", epochs=3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    meta = read_json(out / "meta.json")
    assert meta["precision"] == "mixed_bfloat16" and meta["resumed_after_epoch"] == 2
    for a, b in zip(reference.get_weights(), resumed.get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_a_checkpoint_resumes_only_into_the_experiment_that_wrote_it(tmp_path, digits_prepared, caplog):
    """Changing data.scaling, the split, or an architecture's layers between a kill and the rerun
    restarts training, with one line saying why (before, only the settings and the raw data counted)."""
    import copy

    import keras
    from convbench.models.study import resolve_architectures
    from convbench.train.checkpoints import EpochCheckpoint, restore_checkpoint
    from convbench.train.training import EpochTimer, experiment_fingerprint

    manifest = digits_prepared.manifest
    declared = {"mine": {"layers": [{"Conv2D": {"filters": 8, "kernel_size": 3}}]}}
    mine = resolve_architectures(declared, {})["mine"]
    settings = {"epochs": 3, "batch_size": 64}
    written = experiment_fingerprint(mine, 1, settings, manifest)
    assert experiment_fingerprint(mine, 1, settings, copy.deepcopy(manifest)) == written

    rescaled = copy.deepcopy(manifest)
    rescaled["preprocessing"].update(scaling="standardize", offset=33.0, scale=0.02)
    resplit = copy.deepcopy(manifest)
    resplit["shards"]["train"][0]["sha256"] = "0" * 64
    wider = copy.deepcopy(declared)
    wider["mine"]["layers"][0]["Conv2D"]["filters"] = 16
    changed = {"data": experiment_fingerprint(mine, 1, settings, rescaled),
               "data ": experiment_fingerprint(mine, 1, settings, resplit),
               "architecture": experiment_fingerprint(resolve_architectures(wider, {})["mine"], 1, settings, manifest),
               "settings": experiment_fingerprint(mine, 1, {**settings, "batch_size": 32}, manifest)}

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    timer = EpochTimer(1)
    timer.seconds = [0.1]
    for part, fingerprint in changed.items():
        assert [key for key in written if written[key] != fingerprint[key]] == [part.strip()]
        checkpoint = EpochCheckpoint(tmp_path / "ckpt", written, timer)
        checkpoint.set_model(model)
        checkpoint.on_epoch_end(0, {"loss": 1.0})
        caplog.clear()
        restored, resumed = restore_checkpoint(tmp_path / "ckpt", fingerprint)
        assert restored is None and not resumed.history and not (tmp_path / "ckpt").exists()
        reason = {"data": "other prepared data", "architecture": "another architecture definition or training code",
                  "settings": "other training settings"}[part.strip()]
        assert f"was written for {reason}" in caplog.text


def test_a_failed_training_takes_the_old_models_metrics_and_figures_with_it(tmp_path, digits_prepared):
    """Snakemake deletes a failed training job's model, history and metadata; the old metrics and
    figures went on describing a model that was no longer there."""
    from conftest import train_small

    old = [tmp_path / "metrics.json", tmp_path / "figures" / "curves.png", tmp_path / "figures" / "figures.json"]
    for path in old:
        path.parent.mkdir(exist_ok=True)
        path.write_text("the old model's")
    (tmp_path / "notes.txt").write_text("not an evaluation file")
    with pytest.raises(ValueError):
        train_small(digits_prepared, "simple_cnn", tmp_path, optimizer="no_such_optimizer")
    assert not any(path.exists() for path in old)
    assert (tmp_path / "notes.txt").exists()


@pytest.mark.parametrize("module", ["evaluate/inference.py", "base/schedules.py", "base/runtime.py", "train/augmentation.py"])
def test_a_checkpoint_is_resumed_only_under_the_code_training_runs(module, monkeypatch):
    """Training calls the per-batch resize and gather (evaluate/inference.py), the schedules and the seeding
    besides models/ and train/: changing resize_batch from bilinear to nearest must not resume a checkpoint."""
    from pathlib import Path

    import convbench
    from convbench.models.architectures import get_architecture
    from convbench.train.training import experiment_fingerprint

    manifest = {"source_sha256": "x", "input_shape": [8, 8, 1], "shards": {"train": [], "val": []}, "preprocessing": {}}
    arch = get_architecture("simple_cnn")
    before = experiment_fingerprint(arch, 1, {}, manifest)
    target = Path(convbench.__file__).resolve().parent / module
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda path: real(path) + (b"\n# changed" if path == target else b""))
    after = experiment_fingerprint(arch, 1, {}, manifest)
    assert [part for part in before if before[part] != after[part]] == ["architecture"]


def test_a_checkpoint_from_another_keras_or_device_kind_is_not_resumed(tmp_path):
    import keras
    from convbench.train.checkpoints import CheckpointMismatch, EpochCheckpoint, restore_checkpoint, runtime_facts
    from convbench.train.training import EpochTimer

    runtime = runtime_facts()
    assert runtime["keras"] == keras.__version__ and runtime["device"] in ("CPU", "GPU")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    timer = EpochTimer(1)
    timer.seconds = [0.1]
    checkpoint = EpochCheckpoint(tmp_path / "ckpt", {"settings": "s"}, timer, runtime={**runtime, "device": "GPU", "keras": "3.0.0"})
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(CheckpointMismatch, match=r"keras 3.0.0 -> .*device GPU -> CPU.*device kind"):
        restore_checkpoint(tmp_path / "ckpt", {"settings": "s"}, {**runtime, "device": "CPU"})


def test_a_checkpoint_resumes_when_only_the_test_split_changed(digits_prepared):
    """Training reads the training and validation splits: new test images change nothing it resumes from."""
    import copy

    from convbench.models.architectures import get_architecture
    from convbench.train.training import experiment_fingerprint

    manifest = digits_prepared.manifest
    retested = copy.deepcopy(manifest)
    retested["shards"]["test"][0]["sha256"] = "0" * 64
    retested["counts"]["test"] = [0] * len(retested["counts"]["test"])
    arch = get_architecture("simple_cnn")
    assert experiment_fingerprint(arch, 1, {}, retested) == experiment_fingerprint(arch, 1, {}, manifest)
