"""Training-time augmentation with ImageDataGenerator's knobs, as Keras layers inside tf.data.

Two ways to apply the geometric knobs (rotation, shifts, shear, zoom):
- one Keras preprocessing layer per knob (the default): each draws its own parameter and resamples
  the image, so an image rotated and shifted is interpolated twice;
- `single_affine: true`, ImageDataGenerator's way (ImageDataGeneratorAffine): per image, draw the
  same parameters from the same ranges, compose them in the same order into one affine transform
  about the image centre, resample once (bilinear, as its interpolation_order=1) and flip afterwards.
  The tutorial studies use it so that their augmentation is the tutorial's in distribution.
"""

import math

import keras
import tensorflow as tf


class RandomPadCrop(keras.layers.Layer):
    """Zero-pad each side by `padding`, then crop a random window of the original size, one offset
    per image (keras.layers.RandomCrop draws one offset per batch: every image would move alike)."""

    def __init__(self, padding, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = padding
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        pad, count, height, width = self.padding, tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        offsets = keras.random.randint((count, 2), 0, 2 * pad + 1, seed=self.seed_generator)
        rows = offsets[:, :1] + tf.range(height)[tf.newaxis]
        columns = offsets[:, 1:] + tf.range(width)[tf.newaxis]
        return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), columns, axis=2, batch_dims=1)


def affine_transforms(theta, tx, ty, shear, zx, zy, height, width):
    """Per image, the [a0, a1, a2, b0, b1, b2, c0, c1] row keras.ops.image.affine_transform takes
    (output pixel (x, y) -> input pixel) for ImageDataGenerator's apply_affine_transform with these
    parameters: rotation @ shift @ shear @ zoom about the centre. Angles in degrees, shifts in pixels;
    each argument a float tensor of shape (N,), the image's height and width floats.

    ImageDataGenerator builds this matrix in (x, y) and swaps both axes before resampling numpy's
    (row, column) arrays, which is keras' (x, y) = (column, row) again: the matrix goes over as it is.
    (So its tx, drawn from height_shift_range, moves columns: the same distribution when the two
    ranges are equal and the image square, as in the tutorial.)
    """
    theta, shear = theta * (math.pi / 180), shear * (math.pi / 180)
    zeros, ones = tf.zeros_like(theta), tf.ones_like(theta)

    def matrices(entries):  # (N, 3, 3) from nine (N,) entries, row-major
        return tf.reshape(tf.stack(entries, axis=1), (-1, 3, 3))

    rotation = matrices([tf.cos(theta), -tf.sin(theta), zeros, tf.sin(theta), tf.cos(theta), zeros, zeros, zeros, ones])
    shift = matrices([ones, zeros, tx, zeros, ones, ty, zeros, zeros, ones])
    shearing = matrices([ones, -tf.sin(shear), zeros, zeros, tf.cos(shear), zeros, zeros, zeros, ones])
    zoom = matrices([zx, zeros, zeros, zeros, zy, zeros, zeros, zeros, ones])
    # transform_matrix_offset_center(matrix, height, width): the first axis is centred on the height's middle
    o_x, o_y = height / 2 - 0.5, width / 2 - 0.5
    to_centre = tf.reshape(tf.stack([1.0, 0.0, o_x, 0.0, 1.0, o_y, 0.0, 0.0, 1.0]), (3, 3))
    from_centre = tf.reshape(tf.stack([1.0, 0.0, -o_x, 0.0, 1.0, -o_y, 0.0, 0.0, 1.0]), (3, 3))
    matrix = to_centre @ rotation @ shift @ shearing @ zoom @ from_centre
    return tf.reshape(matrix, (-1, 9))[:, :8]


class ImageDataGeneratorAffine(keras.layers.Layer):
    """ImageDataGenerator's random geometry in one resampling per image.

    Per image, like ImageDataGenerator.get_random_transform: a rotation uniform in
    [-rotation_range, rotation_range] degrees, shifts uniform in [-range, range] x the image's height
    (tx) and width (ty), a shear angle uniform in [-shear_range,
    shear_range], zooms of rows and columns drawn independently from [1 - zoom_range, 1 + zoom_range],
    and a horizontal flip with probability 1/2 applied after the transform.
    """

    def __init__(self, rotation_range=0, width_shift_range=0, height_shift_range=0, shear_range=0, zoom_range=0,
                 horizontal_flip=False, fill_mode="nearest", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.ranges = dict(rotation=rotation_range, width=width_shift_range, height=height_shift_range,
                           shear=shear_range, zoom=zoom_range)
        self.horizontal_flip = horizontal_flip
        self.fill_mode = fill_mode
        self.seed_generator = keras.random.SeedGenerator(seed)

    def uniform(self, count, spread, centre=0.0):
        return keras.random.uniform((count,), centre - spread, centre + spread, seed=self.seed_generator)

    def call(self, images, training=True):
        if not training:
            return images
        count = tf.shape(images)[0]
        height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
        ranges = self.ranges
        transforms = affine_transforms(
            self.uniform(count, ranges["rotation"]),
            self.uniform(count, ranges["height"]) * height,  # tx, as ImageDataGenerator draws it
            self.uniform(count, ranges["width"]) * width,  # ty
            self.uniform(count, ranges["shear"]),
            self.uniform(count, ranges["zoom"], 1.0),
            self.uniform(count, ranges["zoom"], 1.0),
            height,
            width,
        )
        images = keras.ops.image.affine_transform(images, transforms, "bilinear", self.fill_mode)
        if self.horizontal_flip:
            flip = keras.random.uniform((count, 1, 1, 1), seed=self.seed_generator) < 0.5
            images = tf.where(flip, tf.reverse(images, axis=[2]), images)
        return images


GEOMETRY = ("rotation_range", "width_shift_range", "height_shift_range", "shear_range", "zoom_range")


def make_augmentation(settings, seed):
    """Keras preprocessing layers with ImageDataGenerator's knobs, plus pad-and-random-crop; None
    when every knob is off.

    rotation_range and shear_range are in degrees, shifts and zoom are fractions of the image.
    With `single_affine` the geometric knobs and the flip are ImageDataGeneratorAffine.
    """
    fill = {"fill_mode": settings["fill_mode"]}
    layers = []
    padding = (settings.get("random_crop") or {}).get("padding", 0)
    if padding:  # pad with zeros, crop a random window of the original size (He et al. 2016's CIFAR recipe)
        layers.append(RandomPadCrop(padding, seed=seed + 5))
    if settings.get("single_affine"):
        if any(settings[knob] for knob in GEOMETRY) or settings["horizontal_flip"]:
            layers.append(ImageDataGeneratorAffine(**{knob: settings[knob] for knob in GEOMETRY},
                                                   horizontal_flip=settings["horizontal_flip"], seed=seed + 6, **fill))
        return keras.Sequential(layers, name="augmentation") if layers else None
    if settings["horizontal_flip"]:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if settings["rotation_range"]:
        layers.append(keras.layers.RandomRotation(settings["rotation_range"] / 360, seed=seed + 1, **fill))
    if settings["width_shift_range"] or settings["height_shift_range"]:
        layers.append(keras.layers.RandomTranslation(
            settings["height_shift_range"], settings["width_shift_range"], seed=seed + 2, **fill))
    if settings["shear_range"]:
        shear = math.tan(math.radians(settings["shear_range"]))
        layers.append(keras.layers.RandomShear(x_factor=shear, y_factor=shear, seed=seed + 3, **fill))
    if settings["zoom_range"]:
        layers.append(keras.layers.RandomZoom(settings["zoom_range"], seed=seed + 4, **fill))
    return keras.Sequential(layers, name="augmentation") if layers else None
