"""training.augment_on: model — the model scales, augments and resizes uint8 batches, drawing as tf.data would."""

import numpy as np
import pytest
import tensorflow as tf
from convbench.base.atomic import read_json
from convbench.train.augmentation import InputPreparation, ModelAugmentation, augments_on_model
from test_training import run, run_killed_after_second_epoch

SETTINGS = {"rotation_range": 15, "width_shift_range": 0.1, "height_shift_range": 0.1, "shear_range": 0,
            "zoom_range": 0, "horizontal_flip": True, "fill_mode": "nearest", "single_affine": True}


def test_the_layer_draws_what_tf_data_draws_for_the_same_epoch_and_batch():
    manifest = {"input_shape": [10, 10, 3], "preprocessing": {"offset": [1.0, 2.0, 3.0], "scale": [0.01, 0.02, 0.03]}}
    images = np.random.default_rng(0).integers(0, 256, (4, 10, 10, 3), np.uint8)
    layer = ModelAugmentation(manifest["preprocessing"], SETTINGS, 5, steps_per_epoch=3, epochs=4, image_side=10,
                              input_size=14)
    prepare = InputPreparation(manifest, SETTINGS, 5, input_size=14, epochs=2)
    step = tf.function(lambda x: layer(x, training=True))
    earlier = []
    for epoch in range(2):
        for batch in range(3):
            ours = step(tf.constant(images)).numpy()
            expected = tf.function(lambda x, e=epoch, b=batch: prepare(x, e, b))(tf.constant(images)).numpy()
            assert ours.shape == (4, 14, 14, 3)
            # the same draws; the pixels equal up to float rounding (one graph folds constants the other reads)
            np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
            assert all(np.abs(ours - other).max() > 0.1 for other in earlier)  # every step draws anew
            earlier.append(ours)
    inference = layer(tf.constant(images), training=False).numpy()
    np.testing.assert_array_equal(inference, prepare(tf.constant(images), 0, 0, training=False).numpy())


def test_auto_puts_it_on_the_model_only_with_a_gpu():
    assert augments_on_model({"augment_on": "model"}) and not augments_on_model({"augment_on": "input"})
    assert augments_on_model({}) == bool(tf.config.list_logical_devices("GPU"))


def test_a_model_trained_with_it_is_saved_without_it_and_trains_as_in_tf_data(tmp_path, digits_prepared):
    import keras
    from convbench.models.saving import load_model

    keras.backend.clear_session()
    on_input, _ = run(tmp_path, digits_prepared, "input", augment_on="input")
    keras.backend.clear_session()
    on_model, out = run(tmp_path, digits_prepared, "model", augment_on="model")
    assert read_json(out / "meta.json")["augmented_on"] == "model"
    assert read_json(tmp_path / "input" / "meta.json")["augmented_on"] == "input"
    saved = load_model(out / "model.keras")
    assert not any(isinstance(layer, ModelAugmentation) for layer in saved.layers)
    assert saved.input_shape == on_input.input_shape
    for a, b in zip(on_input.get_weights(), on_model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # three short trainings
def test_a_killed_run_augmenting_on_the_model_resumes_identically(tmp_path, digits_prepared):
    import keras

    keras.backend.clear_session()
    reference, _ = run(tmp_path, digits_prepared, "whole", epochs=3, augment_on="model")
    keras.backend.clear_session()
    run_killed_after_second_epoch(tmp_path, digits_prepared, "killed", epochs=3, augment_on="model")
    keras.backend.clear_session()
    resumed, out = run(tmp_path, digits_prepared, "killed", epochs=3, augment_on="model")
    assert read_json(out / "meta.json")["resumed_after_epoch"] == 2
    for a, b in zip(reference.get_weights(), resumed.get_weights(), strict=True):
        assert np.array_equal(a, b)
