"""Transfer learning: pretrained weights loaded, phase 1 keeps the base frozen, phase 2 unfreezes the
last N layers with BatchNorm still in inference mode; the ImageNet weights come through their fetch rule."""

import canonical
import h5py
import keras
import numpy as np
import pytest
import yaml
from conftest import copy_workflow, run_snakemake, train_small
from convbench.base.atomic import read_json
from convbench.models.architectures import ARCHITECTURES
from convbench.models.saving import load_model
from convbench.models.transfer import pretrained_base, transfer_architectures


def save_keras_applications_weights(path, base):
    """Weights in the format keras.applications publishes (Keras 2 HDF5, layers by name)."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, base)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """MobileNetV2 no-top weights made here (random, seeded) in the published file format."""
    keras.utils.set_random_seed(11)
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    save_keras_applications_weights(path, base)
    return path, {weight.path.split("/", 1)[1]: weight.numpy() for weight in base.weights}


@pytest.fixture(scope="module")
def digits_rgb(tmp_path_factory, digits_raw):
    from convbench.data.datasets import prepare_dataset
    from convbench.data.prepared import load_prepared

    out = tmp_path_factory.mktemp("rgb")
    prepare_dataset("digits", [digits_raw], "32x32x3", out / "d", out / "d.json",
                    split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="unit")
    return load_prepared(out / "d", out / "d.json")


def train(tmp_path, data, weights, fine_tune_epochs, layers=12, **changes):
    architecture = transfer_architectures({"mnv2_tl": {
        "base": "mobilenetv2", "weights": str(weights),
        "fine_tune": {"layers": layers, "epochs": fine_tune_epochs, "learning_rate": 1e-3}}})["mnv2_tl"]
    # input_size 32: the data's own size (the default, ImageNet's 224, would only cost time here)
    model = train_small(data, architecture, tmp_path, weights=str(weights), epochs=1, input_size=32, **changes)
    return model, read_json(tmp_path / "meta.json")


def base_weights(model):
    return {weight.path.split("/", 1)[1]: weight.numpy() for weight in pretrained_base(model).weights}


def test_phase_one_trains_the_head_on_the_frozen_pretrained_base(tmp_path, digits_rgb, weights_file):
    path, published = weights_file
    model, meta = train(tmp_path, digits_rgb, path, fine_tune_epochs=0)
    after = base_weights(model)
    assert after.keys() == published.keys()
    assert all(np.array_equal(after[key], published[key]) for key in published)  # loaded, and unchanged
    assert [layer.name for layer in model.layers[-4:]] == ["avg_pool", "head_dense", "head_dropout", "predictions"]
    assert meta["transfer"]["phase_epochs"] == [1] and meta["transfer"]["trainable_base_layers"] == []


def test_a_variants_fine_tune_settings_override_the_architectures(tmp_path, digits_rgb, weights_file):
    path, _ = weights_file
    _, meta = train(tmp_path, digits_rgb, path, fine_tune_epochs=1, layers=12, fine_tune={"epochs": 0})
    assert meta["transfer"]["fine_tune"] == {"layers": 12, "epochs": 0, "learning_rate": 1e-3}
    assert meta["transfer"]["phase_epochs"] == [1] and meta["epochs_run"] == 1  # frozen: no phase 2


@pytest.mark.parametrize("augment_on", ["input", pytest.param("model", marks=pytest.mark.slow)])  # model: full suite
def test_phase_two_fine_tunes_the_last_layers_with_batchnorm_frozen(tmp_path, digits_rgb, weights_file, augment_on):
    """augment_on model: the unfrozen layers and the new optimizer are the trained model's behind ModelAugmentation."""
    path, published = weights_file
    model, meta = train(tmp_path, digits_rgb, path, fine_tune_epochs=1, layers=12, augment_on=augment_on,
                        augmentation={"rotation_range": 5, "width_shift_range": 0, "height_shift_range": 0,
                                      "shear_range": 0, "zoom_range": 0, "horizontal_flip": True,
                                      "fill_mode": "nearest"})
    assert meta["augmented_on"] == augment_on
    base = pretrained_base(model)
    last = base.layers[-12:]
    trainable = [layer.name for layer in base.layers if layer.trainable]
    assert trainable == [layer.name for layer in last if not isinstance(layer, keras.layers.BatchNormalization)]
    assert meta["transfer"]["trainable_base_layers"] == trainable and meta["epochs_run"] == 2
    after = base_weights(model)
    changed = {key for key in published if not np.array_equal(after[key], published[key])}
    tuned = {weight.path.split("/", 1)[1] for layer in last for weight in layer.trainable_weights}
    assert changed and changed <= tuned  # only the unfrozen layers moved
    assert not any("moving_" in key for key in changed)  # BatchNorm ran in inference mode
    reloaded = load_model(tmp_path / "m.keras")  # the custom preprocessing layer loads with safe_mode
    x = digits_rgb.scaled("test")[0][:4]
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_caffe_preprocessing_matches_keras_applications():
    from convbench.models.layers import imagenet_preprocessing_class

    pixels = np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32)
    layer = imagenet_preprocessing_class()("caffe")
    expected = keras.applications.resnet50.preprocess_input(pixels * 255)
    np.testing.assert_allclose(layer(pixels), expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(imagenet_preprocessing_class()("tf")(pixels),
                               keras.applications.mobilenet_v2.preprocess_input(pixels * 255), atol=1e-5)


@pytest.mark.integration
def test_imagenet_weights_are_fetched_verified_and_used_through_snakemake(tmp_path, weights_file):
    path, published = weights_file
    data = path.read_bytes()
    workdir = copy_workflow(tmp_path)
    with canonical.FileServer() as server:
        server.files["/mnv2.h5"] = data
        study = {
            "architectures": ["mnv2_tl"],
            "transfer_learning": {"mnv2_tl": {
                "base": "mobilenetv2", "weights": "imagenet", "weights_url": f"{server.url}/mnv2.h5",
                "weights_sha256": canonical.sha256_bytes(data), "fine_tune": {"layers": 10, "epochs": 1}}},
            "architecture_options": {"mnv2_tl": {"input_size": 32}},  # not ImageNet's 224: only time would differ
        }
        (workdir / "study.yaml").write_text(yaml.safe_dump(study))
        experiment = "results/experiments/digits/mnv2_tl/default/seed1"
        run_snakemake(workdir, "--cores", "2", f"{experiment}/metrics.json", f"{experiment}/figures/figures.json",
                      "--configfile", "study.yaml", config=["training={epochs: 1}"])
        assert [p for p, outcome in server.requests] == ["/mnv2.h5"]
    fetched = workdir / "resources" / "keras" / "models" / path.name
    assert fetched.read_bytes() == data
    meta = read_json(workdir / experiment / "train_meta.json")
    assert meta["transfer"]["phase_epochs"] == [1, 1] and meta["input_shape"] == [32, 32, 3]
    assert 0 <= read_json(workdir / experiment / "metrics.json")["accuracy"] <= 1
    log = (workdir / "results" / "logs" / "train" / "digits" / "mnv2_tl" / "default" / "seed1.log").read_text()
    assert "fine-tuning: " in log and "Downloading" not in log  # Keras found the verified file in KERAS_HOME


def test_mobilenetv2_imagenet_without_a_hash_is_refused():
    from convbench.models.transfer import check_transfer

    with pytest.raises(ValueError, match="publishes no checksum for MobileNetV2"):
        check_transfer("tl", {"base": "mobilenetv2", "weights": "imagenet"}, {"scaling": "unit"}, {})
    with pytest.raises(ValueError, match="needs data.scaling: unit"):
        check_transfer("tl", {"base": "resnet50", "weights": "imagenet"}, {"scaling": "standardize"}, {})


def test_a_transfer_architecture_cannot_take_a_registered_name():
    with pytest.raises(ValueError, match="'resnet50' is the name of another architecture"):
        transfer_architectures({"resnet50": {"base": "resnet50", "weights": "imagenet"}})
    assert ARCHITECTURES["resnet50"].transfer is None


def test_the_schema_offers_exactly_the_transfer_bases():
    import yaml
    from conftest import PROJECT
    from convbench.models.transfer import BASES

    schema = yaml.safe_load((PROJECT / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["properties"]["transfer_learning"]["additionalProperties"]["properties"]["base"]["enum"] == list(BASES)


def test_the_tutorials_famous_bases_resnet152_and_mobilenet_fetch_keras_own_files():
    """ResNet-152's no-top weights are checked against the md5 keras.applications publishes; MobileNet (v1)
    has none published, so a study gives weights_sha256, as for MobileNetV2."""
    from convbench.models.transfer import check_transfer, weights_file

    name, url, known = weights_file("resnet152", 224)
    assert (name, known) == ("resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5", "md5:ee4c566cf9a93f14d82f913c2dc6dd0c")
    assert url.endswith("/keras-applications/resnet/resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert weights_file("mobilenet", 160)[:3:2] == ("mobilenet_1_0_160_tf_no_top.h5", None)
    assert weights_file("mobilenet", 96)[0] == "mobilenet_1_0_224_tf_no_top.h5"  # keras picks 224 for other sizes
    with pytest.raises(ValueError, match="publishes no checksum for MobileNet's ImageNet weights; set weights_sha256"):
        check_transfer("tl", {"base": "mobilenet", "weights": "imagenet"}, {"scaling": "unit"}, {})
