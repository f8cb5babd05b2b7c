"""GoogLeNet (Szegedy et al. 2015, "Going deeper with convolutions"; Inception v1), as its Table 1 and
Figure 3 give it: a 7x7/2 stem, a 1x1 and a 3x3 convolution, nine inception modules (3a-3b, 4a-4e,
5a-5b) between stride-2 max poolings, global average pooling, dropout 0.4 and one linear layer with softmax.
Local response normalisation after the first max pooling and after the 3x3 convolution, as in the paper's
figure. 22 layers with parameters on its longest path (27 counting pooling). Registered in
convbench.models.architectures.

Not built: the two auxiliary classifiers on 4a and 4d, which the paper uses during training only (their loss
weighted 0.3) and discards at inference; convbench trains single-output models, so a googlenet trains and
evaluates on its main classifier alone.
"""

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
