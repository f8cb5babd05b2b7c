"""Transfer learning from ImageNet weights, as the Keras transfer-learning guide teaches it.

Phase 1: the pretrained base is frozen and called with training=False (its BatchNorm layers stay
in inference mode for good); a new head (GlobalAveragePooling, Dense 256 ReLU, Dropout 0.5,
softmax) is trained at the normal rate. Phase 2: the last N layers of the base are unfrozen
(BatchNorm layers excepted) and everything is fine-tuned at a low rate.

ImageNet weights are fetched by their own rule into resources/keras/models/ (the Keras cache
layout) and verified there; training jobs point KERAS_HOME at resources/keras, so Keras finds
them and never downloads on a compute node.
"""

from dataclasses import dataclass

from .architectures import ARCHITECTURES, Architecture
from .layers import imagenet_preprocessing_class

KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"
KERAS_HOME = "resources/keras"  # relative to the workflow's working directory


@dataclass(frozen=True)
class Base:
    constructor: str  # keras.applications class
    min_size: int
    imagenet_size: int  # the resolution its ImageNet weights were trained at: transfer learning's default input_size
    preprocessing: str  # what keras.applications.<module>.preprocess_input does: tf, caffe or raw255
    weights: tuple | None  # (file name, URL, published hash "md5:...") of the no-top ImageNet weights


BASES = {
    # Hashes: the ones keras.applications itself checks (md5), from its source.
    "vgg16": Base("VGG16", 32, 224, "caffe", ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                         KERAS_APPLICATIONS + "vgg16/", "md5:6d6bbae143d832006294945121d1f1fc")),
    "vgg19": Base("VGG19", 32, 224, "caffe", ("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                         KERAS_APPLICATIONS + "vgg19/", "md5:253f8cb515780f3b799900260a226db6")),
    "resnet50": Base("ResNet50", 32, 224, "caffe", ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                               KERAS_APPLICATIONS + "resnet/", "md5:4d473c1dd8becc155b73f8504c6f6626")),
    "resnet101": Base("ResNet101", 32, 224, "caffe", ("resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                                 KERAS_APPLICATIONS + "resnet/", "md5:88cf7a10940856eca736dc7b7e228a21")),
    "inceptionv3": Base("InceptionV3", 75, 299, "tf", ("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                                  KERAS_APPLICATIONS + "inception_v3/", "md5:bcbd6486424b2319ff4ef7d526e38f63")),
    "efficientnetb0": Base("EfficientNetB0", 32, 224, "raw255", ("efficientnetb0_notop.h5",
                                                            "https://storage.googleapis.com/keras-applications/",
                                                            "md5:50bc09e76180e00e4465e1a485ddc09d")),
    "resnet152": Base("ResNet152", 32, 224, "caffe", ("resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                                 KERAS_APPLICATIONS + "resnet/", "md5:ee4c566cf9a93f14d82f913c2dc6dd0c")),
    # keras.applications publishes no hash for MobileNet (v1) or MobileNetV2: the study must give weights_sha256.
    "mobilenet": Base("MobileNet", 32, 224, "tf", None),
    "mobilenetv2": Base("MobileNetV2", 32, 224, "tf", None),
}
MOBILENETV2_SIZES = (96, 128, 160, 192, 224)
MOBILENET_SIZES = (128, 160, 192, 224)  # the input sizes MobileNet (v1) has ImageNet weights for
UNHASHED = ("mobilenet", "mobilenetv2")


def weights_file(base, size):
    """(file name, URL, published hash or None) of a base's no-top ImageNet weights for this input size."""
    if base == "mobilenetv2":
        rows = size if size in MOBILENETV2_SIZES else 224  # what keras.applications picks
        name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
        return name, KERAS_APPLICATIONS + "mobilenet_v2/" + name, None
    if base == "mobilenet":
        rows = size if size in MOBILENET_SIZES else 224  # what keras.applications picks (width multiplier 1)
        name = f"mobilenet_1_0_{rows}_tf_no_top.h5"
        return name, KERAS_APPLICATIONS + "mobilenet/" + name, None
    name, folder, known_hash = BASES[base].weights
    return name, folder + name, known_hash


def weights_source(spec, size):
    """(file name, URLs, known hash) to fetch for a transfer architecture with ImageNet weights."""
    name, url, published = weights_file(spec["base"], size)
    urls = [spec["weights_url"]] if spec.get("weights_url") else []
    known_hash = f"sha256:{spec['weights_sha256'].lower()}" if spec.get("weights_sha256") else published
    return name, [*urls, url], known_hash


def check_transfer(name, spec, data_config, settings):
    """Fail while the config is read, with the key and the fix."""
    where = f"transfer_learning.{name}"
    if spec["weights"] == "imagenet" and spec["base"] in UNHASHED and not spec.get("weights_sha256"):
        raise ValueError(
            f"{where}: keras.applications publishes no checksum for {BASES[spec['base']].constructor}'s ImageNet "
            "weights; set weights_sha256 (sha256sum of a copy you trust) so the download can be verified"
        )
    if spec.get("weights_url") and not spec.get("weights_sha256"):
        raise ValueError(f"{where}: weights_url needs weights_sha256, the hash of the file it serves")
    if data_config["scaling"] != "unit":
        raise ValueError(f"{where}: transfer learning needs data.scaling: unit (the base applies ImageNet's own scaling)")
    if settings.get("schedule") == "plateau" or settings.get("early_stopping", {}).get("enabled"):
        raise ValueError(f"{where}: plateau schedules and early stopping are for training from scratch; "
                         "transfer learning runs its two phases for their full epochs")


def transfer_architectures(declared):
    """{name: Architecture} of the architectures declared under `transfer_learning` (already schema-validated)."""
    made = {}
    for name, spec in declared.items():
        if name in ARCHITECTURES:
            raise ValueError(f"transfer_learning.{name}: {name!r} is the name of another architecture; choose another name")
        base = BASES[spec["base"]]
        made[name] = Architecture(
            name, _builder(name, spec), base.min_size, rgb=True, input_size=base.imagenet_size,
            description=spec.get("description", f"{base.constructor} with ImageNet weights, fine-tuned"),
            idea=f"transfer learning: {base.constructor}'s ImageNet features, a new head, then its top layers fine-tuned",
            transfer=dict(spec),
        )
    return made


def _builder(name, spec):
    def build(input_shape, num_classes, weights=None):
        """Phase 1 model. `weights`: None (random base), "imagenet" (from KERAS_HOME) or a file path."""
        import keras
        from keras import layers

        base_spec = BASES[spec["base"]]
        inputs = keras.Input(shape=input_shape)
        x = imagenet_preprocessing_class()(base_spec.preprocessing, name="imagenet_preprocessing")(inputs)
        base = getattr(keras.applications, base_spec.constructor)(
            include_top=False, weights=weights, input_shape=tuple(input_shape))
        base.trainable = False
        x = base(x, training=False)  # BatchNorm in inference mode, in both phases
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(256, activation="relu", name="head_dense")(x)
        x = layers.Dropout(0.5, name="head_dropout")(x)
        outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
        return keras.Model(inputs, outputs, name=name)

    return build


def pretrained_base(model):
    import keras

    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def unfreeze_last(model, count):
    """Phase 2: the base's last `count` layers become trainable, except BatchNorm (the guide's advice)."""
    import keras

    base = pretrained_base(model)
    base.trainable = True
    boundary = len(base.layers) - count
    for position, layer in enumerate(base.layers):
        layer.trainable = position >= boundary and not isinstance(layer, keras.layers.BatchNormalization)
    return [layer.name for layer in base.layers if layer.trainable]
