"""Every registered architecture builds and trains one step, BatchNorm on the fused kernel as the engine trains it."""

import keras
import numpy as np
import pytest
from conftest import train_small
from convbench.models.architectures import ARCHITECTURES, create_model, get_architecture
from convbench.models.fused_batchnorm import fuse_batchnorm


# The deepest take seconds each to build and step: the full suite trains them, the unit tier their smaller kin.
DEEPEST = {"resnet101", "resnet152"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in DEEPEST else name
                                  for name in ARCHITECTURES])
def test_builds_and_trains_one_step(name):
    arch = get_architecture(name)
    shape = (arch.min_size, arch.min_size, 3 if arch.rgb else 1)
    model = create_model(name, shape, 5)
    assert model.output_shape == (None, 5)
    fuse_batchnorm(model)
    # Eager: one step does not repay tracing a 100-layer graph (79 s for resnet101 here).
    model.compile("adam", "categorical_crossentropy", run_eagerly=True)
    x = np.random.default_rng(0).random((4, *model.input_shape[1:]), np.float32)  # its input_size
    y = keras.utils.to_categorical([0, 1, 2, 3], 5)
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)


def test_simple_cnn_is_the_classic_mnist_convnet():
    model = create_model("simple_cnn", (28, 28, 1), 10)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Dense", "Dropout", "Dense"]
    assert model.count_params() == 225_034  # 320 + 18,496 + 204,928 + 1,290


def test_unknown_architecture_lists_the_registered_ones():
    with pytest.raises(KeyError, match="registered: alexnet, alexnet_lrn, bn_cnn, bn_cnn_tutorial, efficientnetb0, googlenet, "
                                       "inceptionv3"):
        get_architecture("resnet9")


@pytest.mark.parametrize("depth, paper", [(20, 0.27e6), (32, 0.46e6), (44, 0.66e6), (56, 0.85e6)])
def test_cifar_resnets_have_the_papers_depth_and_size(depth, paper):
    """He et al. 2016, Table 6 (option A: identity shortcuts add no parameters)."""
    model = create_model(f"resnet{depth}", (32, 32, 3), 10)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) + 1 == depth  # conv layers + the classifier
    assert abs(model.count_params() - paper) <= 0.02 * paper


def test_option_a_shortcut_is_the_input_subsampled_and_zero_padded():
    model = create_model("resnet20", (32, 32, 3), 10)
    entry = keras.Model(model.input, [model.get_layer("stage2_block1_zero_pad").output,
                                      model.get_layer("stage1_block3_conv2").input])
    shortcut, _ = entry(np.random.default_rng(0).random((2, 32, 32, 3), np.float32))
    stage1_out = keras.Model(model.input, model.get_layer("stage2_block1_subsample").input)(
        np.random.default_rng(0).random((2, 32, 32, 3), np.float32))
    np.testing.assert_array_equal(shortcut[..., :16], stage1_out[:, ::2, ::2, :])
    assert not np.any(shortcut[..., 16:]) and shortcut.shape == (2, 16, 16, 32)
    projection = create_model("resnet20b", (32, 32, 3), 10)
    assert projection.count_params() > model.count_params()  # option B's 1x1 convs


def first_conv_input(model, images):
    """What the model's first convolution receives for these images."""
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    return keras.Model(model.inputs, conv.input)(images)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_first_convolution_sees_activations_of_a_sane_scale(name):
    """[0, 1] inputs (unit scaling) must not shrink to ~0 before the stem: EfficientNet rescales by
    1/255 inside, so convbench feeds it x 255."""
    arch = get_architecture(name)
    shape = (arch.min_size, arch.min_size, 3 if arch.rgb else 1)
    model = create_model(name, shape, 5)
    images = np.random.default_rng(0).random((2, *model.input_shape[1:]), np.float32)
    std = float(np.std(first_conv_input(model, images)))
    assert 0.1 < std < 10, std


def test_grad_cam_uses_the_last_conv_layer_with_space():
    from convbench.evaluate.visualization import grad_cam_layer

    model = create_model("resnet50", (32, 32, 3), 10, input_size=32)  # ends in 1x1 maps at 32 px
    layer = grad_cam_layer(model)
    assert min(layer.output.shape[1:3]) >= 2
    later = [conv for conv in model.layers[model.layers.index(layer) + 1:] if isinstance(conv, keras.layers.Conv2D)]
    assert later and all(min(conv.output.shape[1:3]) == 1 for conv in later)


def test_a_yaml_declared_architecture_trains(tmp_path, digits_prepared):
    import yaml
    from convbench.base.atomic import read_json
    from convbench.models.architectures import ARCHITECTURES
    from convbench.models.custom import custom_architectures

    declared = yaml.safe_load("""
    tiny_yaml:
      min_size: 28
      layers:
        - Conv2D: {filters: 8, kernel_size: 3, activation: relu}
        - MaxPooling2D: {pool_size: 2}
        - Flatten
        - Dense: {units: 32, activation: relu}
    """)
    model = train_small(digits_prepared, custom_architectures(declared)["tiny_yaml"], tmp_path)
    assert "tiny_yaml" not in ARCHITECTURES  # declaring it registered nothing
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    assert model.output_shape == (None, 10)
    assert read_json(tmp_path / "meta.json")["epochs_run"] == 2


APPLICATIONS = [name for name, arch in ARCHITECTURES.items() if arch.input_size]


@pytest.mark.parametrize("name", APPLICATIONS)
def test_default_input_size_leaves_the_last_feature_map_at_least_3x3(name):
    arch = get_architecture(name)
    model = create_model(name, (32, 32, 3), 10)  # CIFAR-sized data
    assert model.input_shape == (None, arch.input_size, arch.input_size, 3)
    # the last feature map: the last convolution before the spatial dimensions are pooled away (MobileNet's
    # classifier is a 1x1 convolution on the pooled features)
    head = next(index for index, layer in enumerate(model.layers)
                if isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D, keras.layers.Flatten)))
    last = [layer for layer in model.layers[:head] if isinstance(layer, keras.layers.Conv2D)][-1]
    assert min(last.output.shape[1:3]) >= 3, (name, last.name, last.output.shape)


def test_input_size_below_the_architectures_smallest_is_refused():
    from convbench.models.architectures import check_input_size

    with pytest.raises(ValueError, match="inceptionv3 on cifar10: input_size 64 is below inceptionv3's smallest input, 75"):
        check_input_size("inceptionv3", 64, "inceptionv3 on cifar10")
    check_input_size("inceptionv3", 139, "fine")


def test_local_response_normalization_is_the_papers_formula_and_loads_safely(tmp_path):
    from convbench.models.layers import local_response_normalization_class
    from convbench.models.saving import load_model, save_model

    a = np.random.default_rng(0).random((1, 2, 2, 7), np.float32) * 10
    got = np.asarray(local_response_normalization_class()()(a))
    squares = np.pad(a**2, [(0, 0), (0, 0), (0, 0), (2, 2)])
    window = sum(squares[..., i : i + 7] for i in range(5))  # 5 neighbouring channels, clipped at the ends
    np.testing.assert_allclose(got, a / (2 + 1e-4 * window) ** 0.75, rtol=1e-5)

    model = create_model("alexnet_lrn", (32, 32, 3), 10)
    assert [layer.name for layer in model.layers if "lrn" in layer.name] == ["lrn1", "lrn2"]
    save_model(model, tmp_path / "a.keras")
    images = np.random.default_rng(1).random((2, 32, 32, 3), np.float32)
    np.testing.assert_allclose(load_model(tmp_path / "a.keras").predict(images, verbose=0), model.predict(images, verbose=0),
                               rtol=1e-6)


def test_a_study_resolves_its_architectures_into_a_read_only_mapping():
    from convbench.models.study import architecture_from_params, resolve_architectures

    custom = {"tiny": {"layers": ["Flatten"]}}
    transfer = {"tl": {"base": "mobilenetv2", "weights": "imagenet"}}
    study = resolve_architectures(custom, transfer)
    assert set(study) == set(ARCHITECTURES) | {"tiny", "tl"}
    assert study["tiny"].custom and study["tl"].transfer == transfer["tl"] and study["tl"].rgb
    assert "tiny" not in ARCHITECTURES and "tl" not in ARCHITECTURES  # nothing registered globally
    with pytest.raises(TypeError):
        study["other"] = study["tiny"]
    with pytest.raises(TypeError):
        ARCHITECTURES["other"] = study["tiny"]
    # what a training job builds from its params is what the Snakefile resolved
    assert architecture_from_params("tl", transfer=transfer["tl"]).input_size == study["tl"].input_size
    assert architecture_from_params("simple_cnn") is ARCHITECTURES["simple_cnn"]
    with pytest.raises(ValueError, match="'tiny' is also declared under custom_architectures"):
        resolve_architectures(custom, {"tiny": transfer["tl"]})


# The weight decay each built-in architecture's paper states; one whose layers carry a weight penalty must be here.
PAPER_WEIGHT_DECAY = {name: 1e-4 for name in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet20b")}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_weight_penalties_decay_weights_at_the_papers_rate(name):
    """Decay d means the penalty's gradient is d * w (He et al.'s 1e-4), i.e. Keras' L2(d / 2)."""
    import tensorflow as tf

    arch = get_architecture(name)
    model = create_model(name, (arch.min_size, arch.min_size, 3 if arch.rgb else 1), 10)
    penalized = [layer.kernel for layer in model.layers if getattr(layer, "kernel_regularizer", None)]
    if name not in PAPER_WEIGHT_DECAY:
        assert not penalized, f"{name} penalizes weights: add its paper's decay to PAPER_WEIGHT_DECAY"
        return
    assert penalized
    with tf.GradientTape() as tape:
        penalty = tf.add_n([layer.kernel_regularizer(layer.kernel) for layer in model.layers
                            if getattr(layer, "kernel_regularizer", None)])
    for kernel, gradient in zip(penalized, tape.gradient(penalty, penalized)):
        np.testing.assert_allclose(gradient.numpy(), PAPER_WEIGHT_DECAY[name] * kernel.numpy(), rtol=1e-5, atol=1e-12)


def test_a_damaged_experiment_model_is_named_and_moved_aside(tmp_path):
    from convbench.base.atomic import sha256, write_json
    from convbench.models.saving import DamagedModel, load_model

    model = create_model("simple_cnn", (28, 28, 1), 10)
    path = tmp_path / "model.keras"
    model.save(path)
    write_json(tmp_path / "train_meta.json", {"model_sha256": sha256(path)})
    assert load_model(path).count_params() == model.count_params()  # intact: loads

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: zip and Keras might not notice, the hash does
    path.write_bytes(data)
    with pytest.raises(DamagedModel, match=rf"^{path} is damaged: its SHA-256 differs .* run snakemake again"):
        load_model(path)
    assert not path.exists() and (tmp_path / "model.keras.damaged").read_bytes() == data

    # Trained before hashes were recorded: a file Keras cannot open is set aside all the same.
    path.write_bytes(data[: len(data) // 3])
    write_json(tmp_path / "train_meta.json", {})
    with pytest.raises(DamagedModel, match="Keras cannot open it"):
        load_model(path)
    assert not path.exists()



@pytest.mark.parametrize("name, paper, tolerance", [
    ("googlenet", 6.8e6, 0.03),  # Szegedy et al. 2015, Table 1's column sums to ~6.8 M weights (biases left out)
    ("mobilenet", 4.2e6, 0.02),  # Howard et al. 2017, Table 4: 1.0 MobileNet-224, 4.2 million parameters
    ("resnet152", 60.2e6, 0.01),  # He et al. 2016 (the 152-layer ResNet, 60.2 M as commonly reported)
])
def test_the_tutorials_famous_architectures_have_their_papers_size(name, paper, tolerance):
    """At the papers' 224 px and 1000 ImageNet classes."""
    model = create_model(name, (224, 224, 3), 1000, input_size=224)
    assert abs(model.count_params() - paper) <= tolerance * paper, model.count_params()


def test_googlenet_is_table_1_of_its_paper():
    """Nine inception modules, each the concatenation of its four branches' widths; 6,998,552 parameters at
    1000 classes, as Caffe's bvlc_googlenet (the reference model) without its auxiliary classifiers."""
    from convbench.models.googlenet import INCEPTION_MODULES

    model = create_model("googlenet", (224, 224, 3), 1000, input_size=224)
    assert model.count_params() == 6_998_552
    modules = [layer for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
    assert [layer.name for layer in modules] == [f"inception_{name}" for name in INCEPTION_MODULES]
    for layer, (one, _, three, _, five, proj) in zip(modules, INCEPTION_MODULES.values()):
        assert layer.output.shape[-1] == one + three + five + proj
    assert model.get_layer("inception_5b").output.shape[1:3] == (7, 7) and model.get_layer("pool5_drop").rate == 0.4
