"""`single_affine`: ImageDataGenerator's random geometry, drawn and applied the way it does."""

import numpy as np
import pytest
from convbench.train.augmentation import ImageDataGeneratorAffine, affine_transforms, make_augmentation

OFF = {"rotation_range": 0, "width_shift_range": 0, "height_shift_range": 0, "shear_range": 0, "zoom_range": 0,
       "horizontal_flip": False, "fill_mode": "nearest"}


@pytest.mark.parametrize("shape", [(20, 20, 1), (12, 17, 3)])
@pytest.mark.parametrize("theta, tx, ty, shear, zx, zy", [(10, 2.0, -1.5, 0, 1, 1), (-13, 0, 3.0, 0, 1, 1),
                                                          (7, 1.2, 0.7, 5, 1.1, 0.9)])
def test_one_transform_resamples_as_image_data_generator_does(shape, theta, tx, ty, shear, zx, zy):
    """Given the same parameters, the same pixels as ImageDataGenerator's apply_affine_transform."""
    import keras
    import tensorflow as tf
    from keras.src.legacy.preprocessing.image import apply_affine_transform

    image = np.random.default_rng(0).random(shape).astype(np.float32)
    reference = apply_affine_transform(image, theta, tx, ty, shear, zx, zy, row_axis=0, col_axis=1, channel_axis=2,
                                       fill_mode="nearest", order=1)
    transform = affine_transforms(*[tf.constant([float(value)]) for value in (theta, tx, ty, shear, zx, zy)],
                                  float(shape[0]), float(shape[1]))
    ours = keras.ops.image.affine_transform(image[None], transform, "bilinear", "nearest")[0].numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_draws_are_seeded_per_image_and_off_in_inference():
    images = np.random.default_rng(1).random((8, 16, 16, 1)).astype(np.float32)
    settings = {**OFF, "rotation_range": 15, "width_shift_range": 0.1, "height_shift_range": 0.1,
                "horizontal_flip": True, "single_affine": True}
    first, again = (np.asarray(make_augmentation(settings, seed=3)(images, training=True)) for _ in range(2))
    other = np.asarray(make_augmentation(settings, seed=4)(images, training=True))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    moved = [not np.allclose(first[i], images[i]) for i in range(len(images))]
    assert all(moved)
    differences = [np.abs(first[i] - first[0]).sum() for i in range(1, len(images))]
    assert min(differences) > 0  # not one transform for the whole batch
    assert np.array_equal(np.asarray(make_augmentation(settings, seed=3)(images, training=False)), images)


def test_ranges_are_image_data_generators():
    """Rotations fill [-15, 15] degrees, shifts [-0.1, 0.1] of the side, as get_random_transform draws them."""
    layer = ImageDataGeneratorAffine(rotation_range=15, width_shift_range=0.1, height_shift_range=0.1, seed=0)
    angles = np.asarray(layer.uniform(20000, 15))
    assert angles.min() >= -15 and angles.max() <= 15 and abs(angles.mean()) < 0.3 and angles.std() == pytest.approx(
        30 / np.sqrt(12), rel=0.02)


def test_single_affine_alone_or_with_every_knob_off_augments_nothing():
    from convbench.base.config import augmentation_on

    assert make_augmentation({**OFF, "single_affine": True}, seed=1) is None
    assert not augmentation_on({**OFF, "single_affine": True})
    settings = {**OFF, "single_affine": True, "rotation_range": 5, "random_crop": {"padding": 2}}
    layers = make_augmentation(settings, seed=1)
    assert [type(layer).__name__ for layer in layers.layers] == ["RandomPadCrop", "ImageDataGeneratorAffine"]


def test_a_flip_folded_into_the_transform_is_the_transformed_image_flipped():
    import keras
    import tensorflow as tf

    image = np.random.default_rng(2).random((2, 12, 17, 3)).astype(np.float32)
    parameters = [tf.constant([value, value]) for value in (9.0, 1.5, -2.0, 4.0, 1.1, 0.95)]
    plain = affine_transforms(*parameters, 12.0, 17.0)
    folded = affine_transforms(*parameters, 12.0, 17.0, flip=tf.constant([True, False]))
    transformed = keras.ops.image.affine_transform(image, plain, "bilinear", "nearest").numpy()
    both = keras.ops.image.affine_transform(image, folded, "bilinear", "nearest").numpy()
    np.testing.assert_allclose(both[0], transformed[0, :, ::-1], atol=1e-5)
    np.testing.assert_allclose(both[1], transformed[1], atol=1e-6)


@pytest.mark.parametrize("single_affine", [True, False])
def test_each_batch_draws_from_its_seed_epoch_and_index_alone(single_affine):
    """What lets tf.data augment batches in parallel: batch b of epoch e is the same whichever batches
    come before it, computed alone from (seed, e, b)."""
    import tensorflow as tf
    from convbench.train.augmentation import augment, epoch_seed
    from convbench.train.training import training_dataset

    images = np.random.default_rng(3).integers(0, 256, (10, 9, 9, 1), np.uint8)
    manifest = {"input_shape": [9, 9, 1], "preprocessing": {"offset": [0.0], "scale": [1 / 255]}}
    settings = {**OFF, "rotation_range": 20, "width_shift_range": 0.1, "horizontal_flip": True,
                "single_affine": single_affine}
    stream = [x.numpy() for x, _ in training_dataset(images, np.arange(10) % 2, manifest, num_classes=2,
                                                      batch_size=4, seed=6, first_epoch=0, epochs=2,
                                                      augmentation=settings)]
    layers = make_augmentation(settings, 6).layers
    for epoch in range(2):
        order = tf.random.experimental.stateless_shuffle(tf.range(10), seed=[6, epoch]).numpy()
        for batch, first in enumerate(range(0, 10, 4)):
            x = (tf.cast(images[order[first:first + 4]], tf.float32) - 0.0) * tf.constant([1 / 255])  # as gathered
            alone = augment(layers, x, tf.constant([epoch_seed(6, epoch), batch], tf.int64)).numpy()
            assert np.array_equal(stream[epoch * 3 + batch], alone)
    assert not np.array_equal(stream[0], images[:4].astype(np.float32) / 255)
