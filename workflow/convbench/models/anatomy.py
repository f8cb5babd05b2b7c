"""Inside a network, as a course would show it: each layer's output size, parameters and receptive
field, the output-size arithmetic of the first layers, and the first convolution redone by hand in
NumPy next to the model's own result (the evaluate_model job writes it to anatomy.json; the report's
"Inside the networks" section reads it).
"""

import math

import keras
import numpy as np

SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])  # responds to vertical edges
# The tutorial's convolution example: this kernel over a 5x5 image, valid padding (a 3x3 result). It responds to
# horizontal edges, dark above bright. The tutorial's image values are not known here: ours has such an edge.
TUTORIAL_KERNEL = np.array([[-1.0, -1.0, -1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
FIVE_BY_FIVE = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]], float)


# ---------------------------------------------------------------- convolution by hand


def same_padding(size, kernel, stride):
    """(before, after) padding of TensorFlow's 'same': the output has ceil(size / stride) positions,
    the odd pixel of padding going after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d_numpy(image, kernel, bias=None, stride=1, padding="valid"):
    """What a Conv2D layer computes, written out: image (H, W, C_in), kernel (kh, kw, C_in, C_out)
    -> (H', W', C_out). Every output value is the sum over a kh x kw x C_in window of window x kernel
    (a cross-correlation, as deep-learning layers compute it), plus the bias."""
    image = np.asarray(image, np.float64)
    kh, kw = kernel.shape[:2]
    if padding == "same":
        rows, cols = same_padding(image.shape[0], kh, stride), same_padding(image.shape[1], kw, stride)
        image = np.pad(image, (rows, cols, (0, 0)))
    out_h, out_w = (image.shape[0] - kh) // stride + 1, (image.shape[1] - kw) // stride + 1
    out = np.zeros((out_h, out_w, kernel.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            window = image[i * stride : i * stride + kh, j * stride : j * stride + kw, :]  # (kh, kw, C_in)
            out[i, j] = np.tensordot(window, kernel, axes=([0, 1, 2], [0, 1, 2]))
    return out + (0 if bias is None else bias)


def iter_layers(model):
    """Every layer, descending into nested models (e.g. a keras.applications base)."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from iter_layers(layer)


def conv_layers(model):
    return [layer for layer in iter_layers(model) if isinstance(layer, keras.layers.Conv2D)]


def first_conv(model):
    return conv_layers(model)[0]


def find_conv_layer(model, name=None):
    """The named conv layer, or the first one; a clear error lists the conv layers there are."""
    layers = conv_layers(model)
    available = ", ".join(layer.name for layer in layers) or "none"
    if name is None:
        if not layers:
            raise ValueError(f"model {model.name!r} has no Conv2D layer to draw")
        return layers[0]
    for layer in layers:
        if layer.name == name:
            return layer
    kind = "is not a Conv2D layer" if any(layer.name == name for layer in iter_layers(model)) else "does not exist"
    raise ValueError(f"layer {name!r} {kind} in model {model.name!r}; conv layers: {available}")


def spatial_layers(model, names):
    """The named layers (nested bases included), each with an image-shaped (height, width, channels)
    output; a clear error lists the ones there are."""
    spatial = [layer for layer in iter_layers(model)
               if hasattr(layer, "output") and not hasattr(layer, "layers") and len(layer.output.shape) == 4]
    by_name = {layer.name: layer for layer in spatial}
    for name in names:
        if name not in by_name:
            kind = ("has no height × width × channels output" if any(layer.name == name for layer in iter_layers(model))
                    else "does not exist")
            raise ValueError(f"feature map layer {name!r} {kind} in model {model.name!r}; layers with feature maps: "
                             f"{', '.join(by_name)}")
    return [by_name[name] for name in names]


def check_layer_names(arch, filter_layer=None, feature_map_layers=None):
    """Build the architecture once and look up the layers the config names for its figures
    (render.filter_layers, render.feature_map_layers): a typo fails when the config is read, with
    the list of layers there are, not in the evaluate job after training."""
    from .architectures import create_model

    side = arch.input_size or arch.min_size
    model = create_model(arch, (side, side, 3 if arch.rgb else 1), 10)
    if filter_layer:
        find_conv_layer(model, filter_layer)
    if feature_map_layers:
        spatial_layers(model, feature_map_layers)


def input_of(model, target, batch):
    """What `target`, a layer of `model` or of a model nested in it (a keras.applications base),
    receives for `batch`: a nested layer's input tensor lives in the nested model's own graph."""
    if any(layer is target for layer in model.layers):
        return keras.Model(model.inputs[0], target.input)(batch, training=False)
    holder = next(layer for layer in model.layers
                  if hasattr(layer, "layers") and any(inner is target for inner in iter_layers(layer)))
    # holder.input is the nested model's own Input; what the outer graph feeds it is its call's input
    fed = next(tensor for node in holder._inbound_nodes for tensor in node.input_tensors
               if all(tensor is not own for own in holder.inputs))
    return input_of(holder, target, keras.Model(model.inputs[0], fed)(batch, training=False))


def first_conv_by_hand(model, image):
    """The first Conv2D of `model` on one image (as the model takes it): by NumPy and by the layer.

    Returns (layer input, NumPy output, layer output, facts). The layer's activation is applied to
    the NumPy result too (ReLU and linear by hand, others through Keras).
    """
    conv = first_conv(model)
    layer_input = np.asarray(input_of(model, conv, image[np.newaxis]))[0]
    by_layer = np.asarray(conv(layer_input[np.newaxis].astype(np.float32)), np.float64)[0]
    kernel, *rest = [np.asarray(weight, np.float64) for weight in conv.get_weights()]
    if conv.dilation_rate != (1, 1) or conv.groups != 1:
        raise ValueError(f"{conv.name}: dilated or grouped convolutions are not redone by hand")
    by_hand = conv2d_numpy(layer_input, kernel, rest[0] if rest else None, conv.strides[0], conv.padding)
    activation = conv.activation.__name__
    if activation == "relu":
        by_hand = np.maximum(by_hand, 0)
    elif activation != "linear":
        by_hand = np.asarray(conv.activation(by_hand.astype(np.float32)), np.float64)
    facts = {"layer": conv.name, "kernel": list(kernel.shape), "stride": conv.strides[0], "padding": conv.padding,
             "activation": activation, "precision": conv.dtype_policy.name,
             "max_abs_difference": float(np.max(np.abs(by_hand - by_layer)))}
    return layer_input, by_hand, by_layer, facts


# ---------------------------------------------------------------- layer table and receptive fields


WINDOW_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def kernel_and_stride(layer):
    """(kernel extent, stride) of a layer that moves a window over the image; None for others."""
    if isinstance(layer, WINDOW_CONVOLUTIONS):
        return layer.dilation_rate[0] * (layer.kernel_size[0] - 1) + 1, layer.strides[0]
    if isinstance(layer, keras.layers.MaxPooling2D | keras.layers.AveragePooling2D):
        return layer.pool_size[0], layer.strides[0]
    return None


def _parents(layer):
    inputs = layer.input if isinstance(layer.input, list | tuple) else [layer.input]
    return [tensor._keras_history.operation for tensor in inputs if hasattr(tensor, "_keras_history")]


# What counts as a layer of a network's depth, the way its authors count (He et al. 2016's 50 layers, Szegedy et
# al. 2015's 22, Howard et al. 2017's 28): layers with weights, on the longest path from input to output;
# shortcut projections, normalisation and pooling not counted (`depth_with_pooling` adds pooling, as LeNet-5's 7
# and GoogLeNet's 27 do).
WEIGHTED_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Dense)
POOLING_LAYERS = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D,
                  keras.layers.GlobalMaxPooling2D)


def layer_table(model, start=(1, 1), prefix="", depth_start=(0, 0)):
    """A row per layer (descending into nested models): type, output shape, parameters, the receptive
    field: how many input pixels (per side) one output position sees, and the jump: input pixels between
    neighbouring output positions, and its depth: the weighted layers on the longest path to it (and with
    pooling). A window layer of extent k and stride s makes r' = r + (k - 1) * j and j' = j * s; where
    branches meet, the larger field and the longer path count."""
    rows, fields, depths = [], {}, {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            fields[id(layer)], depths[id(layer)] = start, depth_start
            continue
        field = max((fields.get(id(parent), start) for parent in _parents(layer)), default=start)
        depth = tuple(max(values) for values in zip(*(depths.get(id(parent), depth_start)
                                                      for parent in _parents(layer)), depth_start))
        if hasattr(layer, "layers"):  # a nested model (a keras.applications base)
            inner = layer_table(layer, field, prefix=f"{prefix}{layer.name}/", depth_start=depth)
            rows += inner
            field = (inner[-1]["receptive_field"], inner[-1]["jump"]) if inner and inner[-1]["jump"] else field
            depth = (inner[-1]["depth"], inner[-1]["depth_with_pooling"]) if inner else depth
        else:
            window = kernel_and_stride(layer)
            if window:
                field = (field[0] + (window[0] - 1) * field[1], field[1] * window[1])
            weighted, pooling = isinstance(layer, WEIGHTED_LAYERS), isinstance(layer, POOLING_LAYERS)
            depth = (depth[0] + weighted, depth[1] + (weighted or pooling))
            spatial = len(layer.output.shape) == 4
            rows.append({
                "layer": prefix + layer.name, "type": type(layer).__name__,
                "output": "×".join(str(d) for d in layer.output.shape[1:]),
                "parameters": int(layer.count_params()),
                "receptive_field": field[0] if spatial else None, "jump": field[1] if spatial else None,
                "kernel": window[0] if window else None, "stride": window[1] if window else None,
                "padding": getattr(layer, "padding", None) if window else None,
                "depth": depth[0], "depth_with_pooling": depth[1],
            })
        fields[id(layer)], depths[id(layer)] = field, depth
    return rows


def network_depth(rows):
    """(weighted layers on the longest path, the same with pooling) of a layer_table: its output's."""
    return rows[-1]["depth"], rows[-1]["depth_with_pooling"]


def size_arithmetic(rows, input_size, count=3):
    """The output-size arithmetic of the first `count` window layers of a layer table: (n + 2p - k) / s + 1
    with 'valid' padding (p = 0), ceil(n / s) with 'same'."""
    lines, size = [], input_size
    for row in rows:
        if row["jump"] is None:  # past the spatial layers
            break
        out = int(row["output"].split("×")[0])
        if row["kernel"] is not None:
            k, s = row["kernel"], row["stride"]
            if row["padding"] == "same":
                lines.append(f"{row['layer']}: ⌈{size} / {s}⌉ = {out} ('same' padding, kernel {k})")
            else:
                lines.append(f"{row['layer']}: ({size} + 2·0 − {k}) / {s} + 1 = {out}")
            if len(lines) == count:
                break
        size = out
    return lines


def anatomy(model, first_conv):
    """Everything the report's "Inside the networks" shows about one model, as JSON-ready data;
    `first_conv`: the facts first_conv_by_hand found (the by_hand figure computes them)."""
    rows = layer_table(model)
    return {"input": "×".join(str(d) for d in model.input_shape[1:]), "layers": rows,
            "size_arithmetic": size_arithmetic(rows, model.input_shape[1]), "first_conv": first_conv}
