"""GoogLeNet (Szegedy et al. 2015, "Going deeper with convolutions"; Inception v1), as its Table 1 and
Figure 3 give it: a 7x7/2 stem, a 1x1 and a 3x3 convolution, nine inception modules (3a-3b, 4a-4e,
5a-5b) between stride-2 max poolings, global average pooling, dropout 0.4 and one linear layer with softmax.
Local response normalisation after the first max pooling and after the 3x3 convolution, as in the paper's
figure. 22 layers with parameters on its longest path (27 counting pooling). Registered in
convbench.models.architectures.

The paper's two auxiliary classifiers on 4a and 4d, used in training only (each loss weighted 0.3) and
discarded at inference, are `auxiliary_classifiers(network)`; `training.auxiliary_classifiers: true` trains
with them (convbench.train.auxiliary) and saves the network without them.
"""

AUXILIARY_ON = ("inception_4a", "inception_4d")  # Section 5: on the outputs of 4a and 4d

# Table 1: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) per module
INCEPTION_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def googlenet(input_shape, num_classes):
    """GoogLeNet (Szegedy et al. 2015, Inception v1): nine inception modules of parallel 1x1, 3x3, 5x5 convolutions and pooling."""
    import keras
    from keras import layers

    from .layers import local_response_normalization_class

    lrn = local_response_normalization_class()

    def conv(x, filters, size, name, strides=1):
        return layers.Conv2D(filters, size, strides=strides, padding="same", activation="relu", name=name)(x)

    def pool(x, name):
        return layers.MaxPooling2D(3, strides=2, padding="same", name=name)(x)

    def inception(x, name, widths):
        one, reduce3, three, reduce5, five, proj = widths
        branches = [
            conv(x, one, 1, f"inception_{name}_1x1"),
            conv(conv(x, reduce3, 1, f"inception_{name}_3x3_reduce"), three, 3, f"inception_{name}_3x3"),
            conv(conv(x, reduce5, 1, f"inception_{name}_5x5_reduce"), five, 5, f"inception_{name}_5x5"),
            conv(layers.MaxPooling2D(3, strides=1, padding="same", name=f"inception_{name}_pool")(x), proj, 1,
                 f"inception_{name}_pool_proj"),
        ]
        return layers.Concatenate(name=f"inception_{name}")(branches)

    inputs = keras.Input(shape=tuple(input_shape))
    x = pool(conv(inputs, 64, 7, "conv1_7x7_s2", strides=2), "pool1_3x3_s2")
    x = lrn(name="pool1_norm1")(x)
    x = conv(conv(x, 64, 1, "conv2_3x3_reduce"), 192, 3, "conv2_3x3")
    x = pool(lrn(name="conv2_norm2")(x), "pool2_3x3_s2")
    for name, widths in INCEPTION_MODULES.items():
        x = inception(x, name, widths)
        if name in ("3b", "4e"):
            x = pool(x, f"pool{name[0]}_3x3_s2")
    x = layers.GlobalAveragePooling2D(name="pool5_avg")(x)  # the paper's 7x7 average pooling at 224 px
    x = layers.Dropout(0.4, name="pool5_drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="googlenet")


def auxiliary_classifiers(network):
    """The training model of Section 5: `network`'s inputs -> [its own output, one softmax per auxiliary
    classifier]. Each classifier: 5x5 average pooling with stride 3, a 1x1 convolution of 128 with ReLU, a
    fully connected layer of 1024 with ReLU, dropout 0.7, a linear layer with softmax. It shares every layer
    of `network`, so training it trains `network`.

    Deviation: on maps smaller than 5x5 (inputs below 80 px; 4a is 6x6 at the default 96 px and 2x2 at
    32 px) the pooling window is the whole map, since a 5x5 window would not fit."""
    import keras
    from keras import layers

    num_classes = network.output.shape[-1]
    outputs = [network.output]
    for number, module in enumerate(AUXILIARY_ON, start=1):
        name = f"auxiliary_{number}"
        x = network.get_layer(module).output
        window = min(5, x.shape[1], x.shape[2])
        x = layers.AveragePooling2D(window, strides=3, name=f"{name}_avg_pool")(x)
        x = layers.Conv2D(128, 1, activation="relu", name=f"{name}_conv")(x)
        x = layers.Flatten(name=f"{name}_flatten")(x)
        x = layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
        x = layers.Dropout(0.7, name=f"{name}_drop")(x)
        # float32 like the main softmax under mixed precision (create_model)
        outputs.append(layers.Dense(num_classes, activation="softmax", dtype="float32", name=f"{name}_predictions")(x))
    return keras.Model(network.inputs, outputs, name=network.name)
