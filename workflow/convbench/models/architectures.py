"""The architectures: one pure builder per architecture, `(input_shape, num_classes) -> keras.Model`,
beside everything about it (smallest and default input size, colour, bf16 safety, its key idea).

The built-in ones register at import (`@register`) and never change after it: ARCHITECTURES is a
read-only view of them. Those a study declares in config.yaml are Architecture values made from the
config by pure functions (convbench.models.custom, convbench.models.transfer);
convbench.models.study puts them together, and the functions below take a name (a built-in) or an
Architecture. Keras is imported inside the builders so that Snakemake can read all this while
parsing the workflow without paying TensorFlow's import time.
"""

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable

from .googlenet import auxiliary_classifiers, googlenet


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable
    min_size: int  # prepared data smaller than this is upscaled (e.g. 8x8 digits -> 28x28); the smallest input_size
    rgb: bool = False  # needs 3 channels (grayscale inputs are repeated)
    input_size: int | None = None  # default side of the model's input (None: the prepared data's); resized per batch
    bf16_keeps_accuracy: bool = False  # shown by benchmarks/bf16_parity.py: precision auto may use mixed_bfloat16 on BF16 CPUs
    description: str = ""
    idea: str = ""  # the key idea, one line, for the report's famous-architectures table
    custom: bool = False  # declared in config.yaml rather than in this module
    transfer: dict | None = None  # transfer_learning settings (convbench.models.transfer) of a pretrained-base model
    # (network) -> its training model with the authors' training-only classifiers: Model(inputs, [main, *auxiliary]),
    # trained under training.auxiliary_classifiers (convbench.train.auxiliary)
    auxiliary: Callable | None = None


_BUILT_IN: dict[str, Architecture] = {}  # filled by @register while this module is imported, then never
ARCHITECTURES = MappingProxyType(_BUILT_IN)  # the built-in architectures, read-only


def register(name, *, min_size, rgb=False, input_size=None, bf16_keeps_accuracy=False, idea="", auxiliary=None):
    """Decorator adding a built-in builder under `name` (at import only)."""

    def add(build):
        if name in _BUILT_IN:
            raise ValueError(f"architecture {name!r} is registered twice")
        doc = (build.__doc__ or "").strip().splitlines()
        _BUILT_IN[name] = Architecture(name, build, min_size, rgb, input_size, bf16_keeps_accuracy,
                                       doc[0] if doc else "", idea, auxiliary=auxiliary)
        return build

    return add


def get_architecture(name, catalog=ARCHITECTURES) -> Architecture:
    try:
        return catalog[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; registered: {', '.join(sorted(catalog))}") from None


def as_architecture(arch) -> Architecture:
    """An Architecture as given, or the built-in one of that name."""
    return arch if isinstance(arch, Architecture) else get_architecture(arch)


def check_names(section, names, catalog=ARCHITECTURES):
    """Fail on any name that is neither built in nor declared by the study, listing the ones there are."""
    unknown = sorted(set(names) - set(catalog))
    if unknown:
        raise ValueError(f"{section}: unknown architecture(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(catalog)} or declare them under custom_architectures")


def model_input_size(arch, prepared_size, requested=None):
    """Side of the images the model takes: `input_size` when the settings give one, else the
    architecture's default, else the prepared data's. `arch`: an Architecture or a built-in's name."""
    return requested or as_architecture(arch).input_size or prepared_size


def check_input_size(arch, requested, where):
    """Fail while the config is read on an input_size the architecture cannot take."""
    arch = as_architecture(arch)
    if requested is not None and requested < arch.min_size:
        raise ValueError(f"{where}: input_size {requested} is below {arch.name}'s smallest input, {arch.min_size}")


def check_auxiliary_classifiers(architectures, names, settings, where):
    """Fail while the config is read on training.auxiliary_classifiers in a study none of whose architectures
    has any."""
    if settings.get("auxiliary_classifiers") and not any(architectures[name].auxiliary for name in names):
        having = ", ".join(name for name, arch in architectures.items() if arch.auxiliary)
        raise ValueError(f"{where}: auxiliary_classifiers: none of the study's architectures ({', '.join(names)}) "
                         f"has auxiliary classifiers; {having} does")


def create_model(arch, input_shape, num_classes, input_size=None, **options):
    """The architecture built for images of `input_shape` (the prepared data's) fed at
    model_input_size (the feeding pipelines resize per batch); under a mixed precision policy its
    softmax runs in float32, as the Keras mixed precision guide advises (float16 probabilities
    lose the small ones)."""
    import keras

    arch = as_architecture(arch)
    side = model_input_size(arch, input_shape[0], input_size)
    model = arch.build((side, side, input_shape[2]), num_classes, **options)
    if keras.mixed_precision.global_policy().name.startswith("mixed"):
        model.get_layer("predictions").dtype_policy = "float32"
    return model


def input_spec(arch, native_size, native_channels):
    """(size, channels) the architecture is fed for a dataset of the given native image shape."""
    arch = as_architecture(arch)
    return max(native_size, arch.min_size), 3 if arch.rgb else native_channels


# bf16_keeps_accuracy: shown by benchmarks/bf16_parity.py over 5 seeds (BENCHMARKS.md)
@register("simple_cnn", min_size=28, bf16_keeps_accuracy=True,
          idea="two convolution + max-pooling stages, dropout, a dense head: the Keras MNIST example")
def simple_cnn(input_shape, num_classes):
    """The classic Keras MNIST convnet: two conv/pool stages, dropout, one dense layer."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="simple_cnn",
    )


@register("bn_cnn", min_size=28, bf16_keeps_accuracy=True,
          idea="batch normalization after every convolution (Ioffe & Szegedy 2015) in VGG-style blocks")
def bn_cnn(input_shape, num_classes):
    """Deeper CIFAR-style CNN: three blocks of 2 x (conv, batch norm, ReLU), pooling and dropout."""
    # BatchNorm momentum 0.9 (Keras default 0.99): on small datasets (a few steps per epoch) the
    # moving statistics otherwise lag so far behind that validation accuracy stays at chance. The
    # convolutions have no bias: the batch norm after each subtracts it again.
    return deeper_bn_cnn(input_shape, num_classes, "bn_cnn", momentum=0.9, conv_bias=False)


@register("bn_cnn_tutorial", min_size=28,
          idea="the tutorial's deeper CNN as written: bn_cnn with Keras' default batch norm and conv biases")
def bn_cnn_tutorial(input_shape, num_classes):
    """The tutorial's deeper CNN as its code writes it: bn_cnn's layers with Keras' default
    BatchNormalization (momentum 0.99) after convolutions that keep their biases."""
    return deeper_bn_cnn(input_shape, num_classes, "bn_cnn_tutorial", momentum=0.99, conv_bias=True)


def deeper_bn_cnn(input_shape, num_classes, name, *, momentum, conv_bias):
    """Three blocks of 2 x (conv, batch norm, ReLU), max pooling and dropout; a dense head."""
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input(shape=input_shape)], name=name)
    for block, (filters, dropout) in enumerate([(32, 0.2), (64, 0.3), (128, 0.4)], start=1):
        for conv in (1, 2):
            model.add(layers.Conv2D(filters, 3, padding="same", use_bias=conv_bias, name=f"block{block}_conv{conv}"))
            model.add(layers.BatchNormalization(momentum=momentum))
            model.add(layers.ReLU())
        model.add(layers.MaxPooling2D(2))
        model.add(layers.Dropout(dropout))
    model.add(layers.Flatten())
    model.add(layers.Dense(128, activation="relu"))
    model.add(layers.BatchNormalization(momentum=momentum))
    model.add(layers.Dropout(0.5))
    model.add(layers.Dense(num_classes, activation="softmax", name="predictions"))
    return model


@register("lenet5", min_size=32, idea="convolution and subsampling learned end to end: the first CNN read cheques")
def lenet5(input_shape, num_classes):
    """LeNet-5 (LeCun et al. 1998): two tanh conv/average-pool stages and three dense layers.

    As in the paper: 32x32 input, C1 6@5x5, S2 2x2 subsampling, C3 16@5x5, S4, C5 120, F6 84.
    Different from the paper: C3 connects to all 6 S2 maps (the paper's connection table links each
    C3 map to 3-6 of them, to break symmetry and save parameters); S2/S4 are plain average pooling
    (the paper's have a trainable coefficient and bias and a sigmoid); activations are tanh, not the
    scaled 1.7159 tanh(2x/3); the output is a softmax with cross-entropy, not 10 Euclidean RBF units
    with the paper's MAP loss. 61,706 parameters for 10 classes (the paper: 60,000).
    """
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(6, 5, activation="tanh", name="c1"),
            layers.AveragePooling2D(2, name="s2"),
            layers.Conv2D(16, 5, activation="tanh", name="c3"),
            layers.AveragePooling2D(2, name="s4"),
            layers.Flatten(),
            layers.Dense(120, activation="tanh", name="c5"),
            layers.Dense(84, activation="tanh", name="f6"),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="lenet5",
    )


@register("alexnet", min_size=32, idea="a deep ReLU network with dropout, trained on GPUs: won ImageNet 2012")
def alexnet(input_shape, num_classes):
    """AlexNet (Krizhevsky et al. 2012) scaled to small inputs: 5 convs with 3x3 kernels, 2 dropout dense layers.

    As in the paper: 5 ReLU conv layers of 64(96)-192(256)-384-384(256)-256 filters, max pooling after
    conv 1, 2 and 5, two dropout-0.5 dense layers, softmax. Different, for 32-px inputs: 3x3 kernels at
    stride 1 everywhere (the paper: 11x11 stride 4, then 5x5, for 224 px), widths of torchvision's
    single-GPU variant (64/192/384/256/256), non-overlapping 2x2 pooling (the paper: overlapping 3x3
    stride 2), no local response normalisation (later work found it does not help), no two-GPU
    grouping, dense layers of 1024 (the paper: 4096). alexnet_lrn restores the pooling and LRN.
    """
    return _alexnet("alexnet", input_shape, num_classes, paper_details=False)


@register("alexnet_lrn", min_size=32, idea="AlexNet with its overlapping pooling and local response normalisation")
def alexnet_lrn(input_shape, num_classes):
    """AlexNet at 32 px with the paper's overlapping 3x3/2 max pooling and local response normalisation after conv 1 and 2."""
    return _alexnet("alexnet_lrn", input_shape, num_classes, paper_details=True)


def _alexnet(name, input_shape, num_classes, paper_details):
    import keras
    from keras import layers

    from .layers import local_response_normalization_class

    model = keras.Sequential([keras.Input(shape=input_shape)], name=name)
    for index, (filters, pool) in enumerate([(64, True), (192, True), (384, False), (256, False), (256, True)], 1):
        model.add(layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{index}"))
        if paper_details and index <= 2:  # the paper normalises after the first two convolutions, before pooling
            model.add(local_response_normalization_class()(name=f"lrn{index}"))
        if pool:
            model.add(layers.MaxPooling2D(3, strides=2, padding="same") if paper_details else layers.MaxPooling2D(2))
    model.add(layers.Flatten())
    for index in (1, 2):
        model.add(layers.Dropout(0.5))
        model.add(layers.Dense(1024, activation="relu", name=f"fc{index}"))
    model.add(layers.Dense(num_classes, activation="softmax", name="predictions"))
    return model


RESNET_WEIGHT_DECAY = 1e-4  # He et al. 2016, Section 4.2: the gradient of the penalty is 1e-4 * w


def cifar_resnet(name, depth, input_shape, num_classes, shortcut="identity"):
    """He et al. 2016's CIFAR ResNet of depth 6n+2: a 16-filter 3x3 stem, 3 stages of n basic blocks
    with 16/32/64 filters (stride 2 entering stages 2 and 3), global average pooling, softmax.

    shortcut="identity" is the paper's option A (its Table 6 models): where a stage halves the size
    and doubles the width, the shortcut takes every other pixel and pads the new channels with zeros,
    adding no parameters. "projection" is option B: a strided 1x1 conv with batch norm.
    """
    import keras
    from keras import layers

    # Keras' L2(l) adds l*|w|^2 to the loss, whose gradient is 2*l*w: the paper's decay needs l = decay / 2.
    regularizer = keras.regularizers.L2(RESNET_WEIGHT_DECAY / 2)

    def conv(x, filters, strides=1, kernel=3, name=None):
        return layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                             kernel_initializer="he_normal", kernel_regularizer=regularizer, name=name)(x)

    blocks = (depth - 2) // 6
    inputs = keras.Input(shape=input_shape)
    x = layers.ReLU()(layers.BatchNormalization()(conv(inputs, 16, name="stem_conv")))
    for stage, filters in enumerate((16, 32, 64), 1):
        for block in range(1, blocks + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            prefix = f"stage{stage}_block{block}"
            y = layers.ReLU()(layers.BatchNormalization()(conv(x, filters, strides, name=f"{prefix}_conv1")))
            y = layers.BatchNormalization()(conv(y, filters, name=f"{prefix}_conv2"))
            if strides != 1 and shortcut == "projection":
                x = layers.BatchNormalization()(conv(x, filters, strides, kernel=1, name=f"{prefix}_shortcut"))
            elif strides != 1:  # option A, in plain layers (no Lambda: saved models load in safe mode)
                x = layers.MaxPooling2D(pool_size=1, strides=2, name=f"{prefix}_subsample")(x)
                zeros = layers.Rescaling(0.0, name=f"{prefix}_zeros")(x)
                x = layers.Concatenate(name=f"{prefix}_zero_pad")([x, zeros])
            x = layers.ReLU(name=f"{prefix}_out")(layers.Add(name=f"{prefix}_add")([x, y]))  # nameable feature maps
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=regularizer, name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def _register_cifar_resnet(name, depth, shortcut, summary):
    def build(input_shape, num_classes):
        return cifar_resnet(name, depth, input_shape, num_classes, shortcut)

    build.__doc__ = summary
    build.__name__ = name
    idea = ("residual blocks learn a change to their input; identity shortcuts let very deep networks train"
            + (" (projection shortcuts where the shape changes: option B)" if shortcut == "projection" else ""))
    register(name, min_size=32, idea=idea)(build)


# Parameters for 10 classes, as in He et al. 2016, Table 6: 0.27M, 0.46M, 0.66M, 0.85M.
for _depth in (20, 32, 44, 56):
    _register_cifar_resnet(f"resnet{_depth}", _depth, "identity",
                           f"ResNet-{_depth} for CIFAR (He et al. 2016): 3 stages of {(_depth - 2) // 6} basic blocks, "
                           "identity shortcuts with zero padding (option A).")
_register_cifar_resnet("resnet20b", 20, "projection",
                       "ResNet-20 with projection shortcuts (1x1 conv, option B) where the shape changes.")


def _register_application(name, constructor, min_size, input_size, reference, expects_0_255=False):
    """A keras.applications model trained from scratch (weights=None) with its own classifier head.

    expects_0_255: the application rescales its input by 1/255 itself (EfficientNet does): our
    scaled inputs are multiplied by 255 first, so its stem sees what it was designed for.
    """

    def build(input_shape, num_classes):
        import keras

        application = getattr(keras.applications, constructor)
        inputs = keras.Input(shape=tuple(input_shape))
        x = keras.layers.Rescaling(255.0, name="to_0_255")(inputs) if expects_0_255 else inputs
        return application(weights=None, input_tensor=x, input_shape=tuple(input_shape), classes=num_classes,
                           classifier_activation="softmax")

    build.__doc__ = f"{reference}, from keras.applications.{constructor}, trained from scratch."
    build.__name__ = name
    register(name, min_size=min_size, rgb=True, input_size=input_size, idea=APPLICATION_IDEAS[name])(build)


APPLICATION_IDEAS = {
    "vgg16": "depth from stacks of small 3×3 convolutions only",
    "vgg19": "depth from stacks of small 3×3 convolutions only",
    "resnet50": "residual connections and 1×1 bottleneck blocks make 50+ layers trainable",
    "resnet101": "residual connections and 1×1 bottleneck blocks make 100+ layers trainable",
    "inceptionv3": "parallel convolutions of several sizes per block; large kernels factorised (7×7 → 1×7 + 7×1)",
    "resnet152": "residual connections and 1×1 bottleneck blocks make 150+ layers trainable",
    "mobilenet": "depthwise-separable convolutions (a 3×3 per channel, then a 1×1 across): 8-9× fewer operations",
    "mobilenetv2": "inverted residuals with linear bottlenecks on depthwise-separable convolutions: cheap on phones",
    "efficientnetb0": "depth, width and resolution scaled together; inverted-residual blocks with squeeze-and-excitation",
}


# Default input sizes: the smallest at which the last feature map is at least 3x3 (at 32 px these
# networks end in 1x1 maps: their last stages would see no space). The data stays at its own size.
for _name, _constructor, _min_size, _input_size, _reference in [
    ("vgg16", "VGG16", 32, 96, "VGG-16 (Simonyan & Zisserman 2015)"),
    ("vgg19", "VGG19", 32, 96, "VGG-19 (Simonyan & Zisserman 2015)"),
    ("resnet50", "ResNet50", 32, 96, "ResNet-50 (He et al. 2016)"),
    ("resnet101", "ResNet101", 32, 96, "ResNet-101 (He et al. 2016)"),
    ("resnet152", "ResNet152", 32, 96, "ResNet-152 (He et al. 2016)"),
    ("inceptionv3", "InceptionV3", 75, 139, "Inception-v3 (Szegedy et al. 2016)"),
    ("mobilenet", "MobileNet", 32, 96, "MobileNet (Howard et al. 2017), width multiplier 1"),
    ("mobilenetv2", "MobileNetV2", 32, 96, "MobileNetV2 (Sandler et al. 2018)"),
]:
    _register_application(_name, _constructor, _min_size, _input_size, _reference)
_register_application("efficientnetb0", "EfficientNetB0", 32, 96, "EfficientNet-B0 (Tan & Le 2019)", expects_0_255=True)
register("googlenet", min_size=32, input_size=96, auxiliary=auxiliary_classifiers,
         idea="inception modules: 1×1, 3×3 and 5×5 convolutions and pooling side by side, 1×1 reductions before")(googlenet)
