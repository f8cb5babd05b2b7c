"""Metrics: calibration, FLOPs, top-5, agreement with model.evaluate; speed measured fairly
(convbench.evaluate.cost)."""

import keras
import numpy as np
import pytest
from conftest import write_arrays
from convbench.base.atomic import read_json
from convbench.evaluate.evaluation import count_flops, cross_entropy, evaluate_experiment, expected_calibration_error
from convbench.models.architectures import create_model


def test_calibration_error_of_perfect_and_overconfident_models():
    labels = np.array([0, 1, 0, 1])
    assert expected_calibration_error(np.eye(2)[labels], labels) == 0
    overconfident = np.array([[0.9, 0.1]] * 4)  # 90 % sure, right half the time
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.4)


def test_flops_match_the_analytic_count_of_simple_cnn():
    model = create_model("simple_cnn", (28, 28, 1), 10)
    analytic = 2 * (26 * 26 * 9 * 32 + 11 * 11 * 9 * 32 * 64 + 1600 * 128 + 128 * 10)  # multiply-adds x 2
    assert count_flops(model) == pytest.approx(analytic, rel=0.02)


def synthetic(directory, num_classes, size=28, count=60):
    rng = np.random.default_rng(1)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"x_{split}"] = rng.integers(0, 256, (count, size, size, 1), dtype=np.uint8)
        arrays[f"y_{split}"] = np.arange(count) % num_classes
    return write_arrays(directory, arrays, class_names=[f"c{i}" for i in range(num_classes)])


@pytest.mark.parametrize("num_classes, label_smoothing", [(10, 0.0), (12, 0.1)])
def test_metrics_agree_with_model_evaluate(tmp_path, num_classes, label_smoothing):
    data = synthetic(tmp_path / "data", num_classes)
    model = create_model("simple_cnn", data.input_shape, num_classes)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    model.compile("adam", loss, metrics=["accuracy"])
    model.save(tmp_path / "model.keras")
    metrics = evaluate_experiment(tmp_path / "model.keras", data, tmp_path / "m.json", tmp_path / "p.npz")
    x, y = data.scaled("test")
    onehot = keras.utils.to_categorical(y, num_classes)
    _, accuracy = model.evaluate(x, onehot, verbose=0)
    plain = float(keras.losses.CategoricalCrossentropy()(onehot, model.predict(x, verbose=0)))
    assert metrics["accuracy"] == pytest.approx(accuracy) and metrics["loss"] == pytest.approx(plain, rel=1e-5)
    assert (metrics["top5_accuracy"] is None) == (num_classes <= 10)
    assert metrics["parameters"] == model.count_params() and metrics["model_bytes"] > 0
    assert np.sum(metrics["confusion_matrix"]) == len(y)
    saved = read_json(tmp_path / "m.json")
    assert saved["accuracy"] == metrics["accuracy"] and saved["flops_per_image"] == metrics["flops_per_image"]
    assert np.load(tmp_path / "p.npz")["probabilities"].shape == (len(y), num_classes)


def test_test_loss_is_plain_cross_entropy_without_smoothing_or_weight_penalties(tmp_path):
    """A perfect model scores ~0 whatever it trained with; a ResNet's L2 penalty is not in its test loss."""
    labels = np.array([0, 1, 2, 1])
    assert cross_entropy(np.eye(3)[labels], labels) == pytest.approx(0, abs=1e-6)
    assert cross_entropy(np.full((4, 3), 1 / 3), labels) == pytest.approx(np.log(3))
    data = synthetic(tmp_path / "data", 10, size=32)
    model = create_model("resnet20", (32, 32, 1), 10)
    model.compile("sgd", keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
    model.save(tmp_path / "model.keras")
    metrics = evaluate_experiment(tmp_path / "model.keras", data, tmp_path / "m.json", tmp_path / "p.npz")
    x, y = data.scaled("test")
    probabilities = model.predict(x, verbose=0)
    plain = float(keras.losses.CategoricalCrossentropy()(keras.utils.to_categorical(y, 10), probabilities))
    assert metrics["loss"] == pytest.approx(plain, rel=1e-5)
    assert float(sum(model.losses)) > 0.01  # the penalty the compiled loss would have added


def test_cost_measures_every_model_in_interleaved_rounds(tmp_path, caplog):
    from convbench.evaluate.cost import measure_cost

    models = []
    for arch, shape, precision in (("simple_cnn", (28, 28, 1), "float32"), ("lenet5", (32, 32, 1), "mixed_bfloat16")):
        keras.mixed_precision.set_global_policy(precision)
        model = create_model(arch, shape, 10)
        keras.mixed_precision.set_global_policy("float32")
        model.save(tmp_path / f"{arch}.keras")
        models.append(({"dataset": "d", "architecture": arch, "variant": "default"}, tmp_path / f"{arch}.keras"))
    with caplog.at_level("INFO", logger="convbench.evaluate.cost"):
        table = measure_cost(models, threads=2, rounds=3, latency_calls=4, batch_size=16)
    assert list(table["architecture"]) == ["simple_cnn", "lenet5"] and (table["rounds"] == 3).all()
    assert (table["latency_ms_min"] <= table["latency_ms"]).all() and (table["latency_ms"] <= table["latency_ms_max"]).all()
    assert (table["throughput_min"] <= table["throughput_images_per_second"]).all()
    assert (table[["latency_ms", "throughput_images_per_second"]] > 0).all().all()
    assert list(table["precision"]) == ["float32", "mixed_bfloat16"]  # as each model computes, not the loader's policy
    assert table["measured_on"].str.contains("2 threads").all()
    assert sum("round" in record.message for record in caplog.records) == 3


def test_a_pass_over_a_split_leaves_no_shard_open(digits_prepared):
    """Readers handed to tf.numpy_function live as long as the process: their files are closed after each pass."""
    from convbench.data.prepared import load_prepared
    from convbench.evaluate.inference import split_probabilities

    data = load_prepared(digits_prepared.directory, manifest=digits_prepared.manifest)
    model = create_model("simple_cnn", input_shape=data.input_shape, num_classes=data.num_classes)
    probabilities = split_probabilities(model, data, "val")
    assert probabilities.shape == (data.count("val"), data.num_classes)
    assert not data._files
