"""Training-time augmentation with ImageDataGenerator's knobs, as Keras layers inside tf.data.

Two ways to apply the geometric knobs (rotation, shifts, shear, zoom):
- one Keras preprocessing layer per knob (the default): each draws its own parameter and resamples
  the image, so an image rotated and shifted is interpolated twice;
- `single_affine: true`, ImageDataGenerator's way (ImageDataGeneratorAffine): per image, draw the
  same parameters from the same ranges, compose them in the same order into one affine transform
  about the image centre, resample once (bilinear, as its interpolation_order=1) and flip afterwards.
  The tutorial studies use it so that their augmentation is the tutorial's in distribution.

Training draws per batch, statelessly (`augment`): batch b of epoch e gets draws that depend only on
(seed, e, b), so tf.data can augment batches on every core in parallel, deterministically, and a run
resumed at epoch k sees what an uninterrupted run saw.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from ..evaluate.inference import resize_batch


def epoch_seed(seed, epoch):
    """Seed for one epoch's random draws, derived only from (experiment seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] % 2**31)


class BatchSeed(keras.random.SeedGenerator):
    """keras.random's seed argument for one batch: the k-th draw made (in the layers' order, fixed when
    the function is traced) gets fold_in(batch seed, k). Nothing is advanced, so batches can be augmented
    in any order or at once. (No SeedGenerator.__init__: it would make a state variable.)"""

    def __init__(self, seed):
        self.batch_seed, self.draws = seed, 0

    def next(self, ordered=True):
        self.draws += 1
        return tf.random.experimental.stateless_fold_in(self.batch_seed, self.draws)


def augment(layers, images, seed):
    """`images` through each augmentation layer, drawing from `seed` (a [2] int tensor) alone."""
    seeds = BatchSeed(seed)
    for layer in layers:
        transformation = layer.get_random_transformation(images, training=True, seed=seeds)
        images = layer.transform_images(images, transformation, training=True)
    return images


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
        return self.transform_images(images, self.get_random_transformation(images, seed=self.seed_generator))

    def get_random_transformation(self, images, training=True, seed=None):
        return keras.random.randint((tf.shape(images)[0], 2), 0, 2 * self.padding + 1, seed=seed)

    def transform_images(self, images, offsets, training=True):
        pad, height, width = self.padding, tf.shape(images)[1], tf.shape(images)[2]
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        rows = offsets[:, :1] + tf.range(height)[tf.newaxis]
        columns = offsets[:, 1:] + tf.range(width)[tf.newaxis]
        return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), columns, axis=2, batch_dims=1)


def affine_transforms(theta, tx, ty, shear, zx, zy, height, width, flip=None):
    """Per image, the [a0, a1, a2, b0, b1, b2, c0, c1] row keras.ops.image.affine_transform takes
    (output pixel (x, y) -> input pixel) for ImageDataGenerator's apply_affine_transform with these
    parameters: rotation @ shift @ shear @ zoom about the centre. Angles in degrees, shifts in pixels;
    each argument a float tensor of shape (N,), the image's height and width floats. `flip` (N,) bool:
    those images are also mirrored left-right afterwards, in the same resampling (output column x reads
    the transform's column width - 1 - x: the same pixels as flipping the transformed image).

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
    if flip is not None:  # x -> width - 1 - x before the transform
        sign = tf.where(flip, -1.0, 1.0)
        mirror = matrices([sign, zeros, tf.where(flip, width - 1, 0.0), zeros, ones, zeros, zeros, zeros, ones])
        matrix = matrix @ mirror
    return tf.reshape(matrix, (-1, 9))[:, :8]


class ImageDataGeneratorAffine(keras.layers.Layer):
    """ImageDataGenerator's random geometry in one resampling per image.

    Per image, like ImageDataGenerator.get_random_transform: a rotation uniform in
    [-rotation_range, rotation_range] degrees, shifts uniform in [-range, range] x the image's height
    (tx) and width (ty), a shear angle uniform in [-shear_range,
    shear_range], zooms of rows and columns drawn independently from [1 - zoom_range, 1 + zoom_range],
    and a horizontal flip with probability 1/2 applied after the transform (folded into it: one
    resampling, about a third faster than flipping the result).
    """

    def __init__(self, rotation_range=0, width_shift_range=0, height_shift_range=0, shear_range=0, zoom_range=0,
                 horizontal_flip=False, fill_mode="nearest", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.ranges = dict(rotation=rotation_range, width=width_shift_range, height=height_shift_range,
                           shear=shear_range, zoom=zoom_range)
        self.horizontal_flip = horizontal_flip
        self.fill_mode = fill_mode
        self.seed_generator = keras.random.SeedGenerator(seed)

    def uniform(self, count, spread, centre=0.0, seed=None):
        return keras.random.uniform((count,), centre - spread, centre + spread, seed=seed or self.seed_generator)

    def call(self, images, training=True):
        if not training:
            return images
        return self.transform_images(images, self.get_random_transformation(images, seed=self.seed_generator))

    def get_random_transformation(self, images, training=True, seed=None):
        """The (N, 8) transforms of a batch, drawn in ImageDataGenerator's order."""
        count = tf.shape(images)[0]
        height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
        ranges = self.ranges
        parameters = [
            self.uniform(count, ranges["rotation"], seed=seed),
            self.uniform(count, ranges["height"], seed=seed) * height,  # tx, as ImageDataGenerator draws it
            self.uniform(count, ranges["width"], seed=seed) * width,  # ty
            self.uniform(count, ranges["shear"], seed=seed),
            self.uniform(count, ranges["zoom"], 1.0, seed=seed),
            self.uniform(count, ranges["zoom"], 1.0, seed=seed),
        ]
        flip = self.uniform(count, 0.5, 0.5, seed=seed) < 0.5 if self.horizontal_flip else None
        return affine_transforms(*parameters, height, width, flip=flip)

    def transform_images(self, images, transforms, training=True):
        return keras.ops.image.affine_transform(images, transforms, "bilinear", self.fill_mode)


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


class InputPreparation:
    """A uint8 batch as the model trains on it: scaled by the prepared data's preprocessing, augmented with
    batch b of epoch e's draws (seed [epoch_seed(seed, e), b]), resized to `input_size`. `epochs`: how many
    epochs `epoch` (an int or a tensor) may name; their seeds are computed beforehand."""

    def __init__(self, manifest, augmentation, seed, input_size, epochs):
        params = manifest["preprocessing"]
        self.offset = tf.constant(params["offset"], tf.float32)
        self.scale = tf.constant(params["scale"], tf.float32)
        layers = make_augmentation(augmentation, seed) if augmentation else None
        self.layers = layers.layers if layers is not None else []
        self.epoch_seeds = tf.constant([epoch_seed(seed, epoch) for epoch in range(epochs)], tf.int64)
        self.input_size = None if input_size == manifest["input_shape"][0] else input_size

    def __call__(self, images, epoch, batch, training=True):
        x = (tf.cast(images, tf.float32) - self.offset) * self.scale
        if self.layers and training:
            x = augment(self.layers, x, tf.stack([tf.gather(self.epoch_seeds, epoch), tf.cast(batch, tf.int64)]))
        return resize_batch(x, self.input_size)


def augments_on_model(settings):
    """Whether the model scales, augments and resizes its batches (training.augment_on: model) instead of
    tf.data on the CPU (input). auto: the model when a GPU trains, where a uint8 batch is a quarter of the
    bytes to move and the GPU's resampling frees the CPU to read."""
    choice = settings.get("augment_on", "auto")
    if choice == "auto":
        return bool(tf.config.list_logical_devices("GPU"))
    return choice == "model"


@keras.saving.register_keras_serializable(package="convbench")
class ModelAugmentation(keras.layers.Layer):
    """InputPreparation as the first layer of the model that trains (augment_on: model): tf.data reads uint8
    batches and the accelerator scales, augments and resizes them. Training step s draws what batch
    s % steps_per_epoch of epoch s // steps_per_epoch draws in tf.data, so both train alike; `step` is set
    from the first epoch of every fit (set_first_epoch), so a resumed run draws as an uninterrupted one.
    With several replicas each draws for its own slice (batch index b * replicas + replica).
    Not in model.keras: only the trained model is saved (convbench.train.fitted.trained_model)."""

    def __init__(self, preprocessing, augmentation, seed, steps_per_epoch, epochs, image_side, input_size=None,
                 **kwargs):
        kwargs["dtype"] = "float32"  # resampling in the compute precision (float16) would round pixels
        super().__init__(**kwargs)
        self.settings = dict(preprocessing=preprocessing, augmentation=augmentation, seed=seed,
                             steps_per_epoch=steps_per_epoch, epochs=epochs, image_side=image_side,
                             input_size=input_size)
        manifest = {"preprocessing": preprocessing, "input_shape": [image_side]}
        self.prepare = InputPreparation(manifest, augmentation, seed, input_size, epochs)
        self.step = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False,
                                    aggregation="only_first_replica", name="step")
        self.supports_jit = False  # ImageProjectiveTransform has no XLA kernel, as Keras' own Random* layers

    def call(self, images, training=None):
        if not training:
            return self.prepare(images, 0, 0, training=False)
        step = tf.convert_to_tensor(self.step.value)
        steps = self.settings["steps_per_epoch"]
        epoch, batch = step // steps, step % steps
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            batch = batch * context.num_replicas_in_sync + tf.cast(context.replica_id_in_sync_group, tf.int64)
        x = self.prepare(images, epoch, batch)
        self.step.assign_add(1)
        return x

    def compute_output_shape(self, input_shape):
        side = self.settings["input_size"] or input_shape[1]
        return (input_shape[0], side, side, input_shape[3])

    def get_config(self):
        return {**super().get_config(), **self.settings}


def with_model_augmentation(model, manifest, augmentation, seed, steps_per_epoch, epochs, model_class=keras.Model):
    """The model that trains under augment_on: model: uint8 images -> ModelAugmentation -> `model`, a
    `model_class` (AuxiliaryTraining for a model with auxiliary classifiers)."""
    side = model.input_shape[1]
    inputs = keras.Input(tuple(manifest["input_shape"]), dtype="uint8", name="images")
    layer = ModelAugmentation(manifest["preprocessing"], augmentation, seed, steps_per_epoch, epochs,
                              manifest["input_shape"][0], side)
    return model_class(inputs, model(layer(inputs)), name=f"{model.name}_with_augmentation")


def augments_in_model(fitted):
    return any(isinstance(layer, ModelAugmentation) for layer in fitted.layers)


def set_first_epoch(fitted, epoch, steps_per_epoch):
    """Before a fit that starts at `epoch`: where ModelAugmentation's draws continue from."""
    for layer in fitted.layers:
        if isinstance(layer, ModelAugmentation):
            layer.step.assign(epoch * steps_per_epoch)
