"""Decoding every supported format from files in its canonical layout, and clear failures on bad input."""

import gzip
import os

import canonical
import numpy as np
import pytest
from convbench.base.atomic import sha256
from convbench.data import catalog
from convbench.data.catalog import resolve_datasets
from convbench.data.datasets import prepare_dataset
from convbench.data.formats import DatasetError, read_idx
from convbench.data.prepared import load_prepared

SPLIT = dict(split_seed=0, test_fraction=0.2, validation_fraction=0.1, scaling="unit")


STUDY = {}  # the test study's resolved catalog: name -> DatasetInfo


@pytest.fixture(autouse=True)
def clean_study():
    STUDY.clear()


def declare_datasets(declared):
    """Declare `custom_datasets` as a study does: its catalog resolved from them."""
    STUDY.update(resolve_datasets(declared))


def declare(name, fmt, files, **extra):
    """Register a custom dataset whose files are already on disk; returns their paths."""
    entries = [{"url": f"http://127.0.0.1:9/{path.name}", "sha256": sha256(path)} for path in files]
    declare_datasets({name: {"format": fmt, "files": entries, "color_mode": "rgb", **extra}})
    return [str(path) for path in files]


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def prepare(tmp_path, name, paths, spec):
    out = tmp_path / "out"
    prepare_dataset(STUDY.get(name, name), paths, spec, out / "d", out / "d.json", **SPLIT)
    return load_prepared(out / "d", out / "d.json")


def assert_nothing_prepared(tmp_path):
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_mnist_npz_keeps_its_test_split(tmp_path):
    paths = declare("my_mnist", "mnist_npz", [write(tmp_path, "mnist.npz", canonical.mnist_npz(200, 50))])
    data = prepare(tmp_path, "my_mnist", paths, "28x28x1")
    assert [sum(data.manifest["counts"][s]) for s in ("train", "val", "test")] == [180, 20, 50]
    assert data.manifest["class_names"] == [str(i) for i in range(10)]
    assert data.manifest["source_sha256"]["mnist.npz"] == sha256(paths[0])


def test_idx_files_decode_to_the_images_written(tmp_path):
    files = canonical.idx_files(200, 50)
    paths = declare("my_fashion", "idx", [write(tmp_path, n, d) for n, d in files.items()],
                    class_names=list(catalog.BUILTIN_DATASETS["fashion_mnist"].class_names))
    data = prepare(tmp_path, "my_fashion", paths, "28x28x1")
    test_images, test_labels = data.raw("test")
    expected_images, expected_labels = canonical.class_images(50, 28, 28, 1, 10, 1)
    assert np.array_equal(test_images, expected_images) and np.array_equal(test_labels, expected_labels)
    assert data.manifest["class_names"][9] == "Ankle boot"


def test_cifar10_binary_pixels_labels_and_class_names(tmp_path):
    paths = declare("my_cifar10", "cifar10_binary", [write(tmp_path, "c10.tar.gz", canonical.cifar10_binary(40, 40))])
    data = prepare(tmp_path, "my_cifar10", paths, "32x32x3")
    test_images, test_labels = data.raw("test")
    expected_images, expected_labels = canonical.class_images(40, 32, 32, 3, 10, 0)
    assert np.array_equal(test_images, expected_images)  # R, G, B planes back in HWC order
    assert np.array_equal(test_labels, expected_labels)
    assert data.manifest["class_names"] == list(canonical.CIFAR10_CLASSES)
    assert sum(data.manifest["counts"]["train"]) + sum(data.manifest["counts"]["val"]) == 200


def test_cifar100_binary_uses_the_fine_labels(tmp_path):
    paths = declare("my_cifar100", "cifar100_binary", [write(tmp_path, "c100.tar.gz", canonical.cifar100_binary(1000, 200))])
    data = prepare(tmp_path, "my_cifar100", paths, "32x32x3")
    assert data.num_classes == 100 and data.manifest["class_names"][42] == "fine_42"
    assert data.manifest["counts"]["test"] == [2] * 100


def test_gray_images_become_three_channels_for_imagenet_style_models(tmp_path):
    paths = declare("my_mnist", "mnist_npz", [write(tmp_path, "mnist.npz", canonical.mnist_npz(200, 50))])
    data = prepare(tmp_path, "my_mnist", paths, "75x75x3")
    images, _ = data.raw("train")
    assert images.shape[1:] == (75, 75, 3)
    assert np.array_equal(images[..., 0], images[..., 2])


def test_image_folder_with_png_and_jpeg(tmp_path):
    root = canonical.image_folder(tmp_path / "photos", per_class=30, size=40)
    declare_datasets({"photos": {"format": "image_folder", "path": str(root), "image_size": 32, "color_mode": "rgb"}})
    data = prepare(tmp_path, "photos", [str(root)], "32x32x3")
    assert data.manifest["class_names"] == ["cats", "dogs", "owls"]
    assert data.manifest["counts"]["test"] == [6, 6, 6]  # 20 % of each class
    assert data.raw("train")[0].shape[1:] == (32, 32, 3)


def test_image_folder_with_its_own_test_folder(tmp_path):
    """Its test split is prepared apart (prepare_test_split, beside the data as <spec>.test/): the data's own
    manifest does not change with the test images, and the reader joins the two."""
    from convbench.data.datasets import prepare_test_split

    train = canonical.image_folder(tmp_path / "train", per_class=20, size=16)
    test = canonical.image_folder(tmp_path / "test", per_class=4, size=16, seed=5)
    declare_datasets({"photos": {"format": "image_folder", "path": str(train), "test_path": str(test),
                                         "image_size": 16, "color_mode": "grayscale"}})
    data = prepare(tmp_path, "photos", [str(train)], "28x28x1")
    assert "test" not in data.manifest["shards"] and data.manifest["test_split"] == "d.test.json"
    main = (tmp_path / "out" / "d.json").read_bytes()
    prepare_test_split(STUDY["photos"], str(test), "28x28x1", tmp_path / "out" / "d.json", tmp_path / "out" / "d.test",
                       tmp_path / "out" / "d.test.json")
    data = load_prepared(tmp_path / "out" / "d", tmp_path / "out" / "d.json")
    assert data.manifest["counts"]["test"] == [4, 4, 4] and data.labels("test").tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert data.images("test").shape == (12, 28, 28, 1) and data.manifest["native_shape"] == [16, 16, 1]
    data.check(["test"])

    (next((test / "owls").glob("*"))).unlink()  # new test images: only the test split changes
    prepare_test_split(STUDY["photos"], str(test), "28x28x1", tmp_path / "out" / "d.json", tmp_path / "out" / "d.test",
                       tmp_path / "out" / "d.test.json")
    assert (tmp_path / "out" / "d.json").read_bytes() == main
    assert load_prepared(tmp_path / "out" / "d", tmp_path / "out" / "d.json").manifest["counts"]["test"] == [4, 4, 3]


def test_a_damaged_test_split_prepared_apart_sets_aside_its_own_manifest_only(tmp_path):
    """Setting aside the data's manifest would prepare it again and retrain every model for a test image."""
    from convbench.data.datasets import prepare_test_split
    from convbench.data.prepared import DamagedData

    train = canonical.image_folder(tmp_path / "train", per_class=20, size=16)
    test = canonical.image_folder(tmp_path / "test", per_class=4, size=16, seed=5)
    folder_dataset(train, test_path=str(test))
    prepare(tmp_path, "photos", [str(train)], "16x16x3")
    out = tmp_path / "out"
    prepare_test_split(STUDY["photos"], str(test), "16x16x3", out / "d.json", out / "d.test", out / "d.test.json")
    shard = out / "d.test" / "x_test-00000.npy"
    shard.write_bytes(shard.read_bytes()[:-5])
    with pytest.raises(DamagedData, match=r"d.test/x_test-00000.npy: damaged prepared data.*set aside as d.test.json.damaged"):
        load_prepared(out / "d", out / "d.json").images("test", [0])
    assert (out / "d.json").exists() and not (out / "d.test.json").exists()
    data = load_prepared(out / "d", out / "d.json")  # training goes on: it needs no test split
    data.check()
    assert "test" not in data.manifest["shards"]


# ---------------------------------------------------------------- bad input: a clear error naming the file, nothing prepared


def test_corrupt_archive(tmp_path):
    data = bytearray(canonical.cifar10_binary(40, 40))
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # damaged in the middle
    paths = declare("bad", "cifar10_binary", [write(tmp_path, "c10.tar.gz", bytes(data))])
    with pytest.raises(DatasetError, match=r"c10\.tar\.gz: corrupt archive"):
        prepare(tmp_path, "bad", paths, "32x32x3")
    assert_nothing_prepared(tmp_path)


def test_truncated_idx_file(tmp_path):
    files = canonical.idx_files(200, 50)
    raw = gzip.decompress(files["train-images-idx3-ubyte.gz"])
    files["train-images-idx3-ubyte.gz"] = gzip.compress(raw[: len(raw) - 784 * 3])  # 3 images short
    paths = declare("bad", "idx", [write(tmp_path, n, d) for n, d in files.items()])
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: truncated IDX file: its header promises "
                                           r"200 x 28 x 28 = 156800 bytes, found 154448"):
        prepare(tmp_path, "bad", paths, "28x28x1")
    assert_nothing_prepared(tmp_path)


def test_truncated_gzip_stream(tmp_path):
    data = canonical.idx_gz(np.zeros((5, 28, 28), np.uint8))
    path = write(tmp_path, "cut.gz", data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cut\.gz: corrupt or truncated gzip file"):
        read_idx(path, 3)


def test_labels_swapped_with_images_are_named(tmp_path):
    files = canonical.idx_files(200, 50)
    names = list(files)
    path = write(tmp_path, names[1], files[names[1]])
    with pytest.raises(DatasetError, match=r"expected an IDX file of images \(3 dimensions\), found 1"):
        read_idx(path, 3)


def test_label_outside_class_range(tmp_path):
    images, labels = canonical.class_images(40, 32, 32, 3, 10, 0)
    labels[7] = 12
    members = {f"cifar-10-batches-bin/data_batch_{b}.bin": canonical.cifar_records(images, labels) for b in range(1, 6)}
    members["cifar-10-batches-bin/test_batch.bin"] = canonical.cifar_records(images, labels % 10)
    members["cifar-10-batches-bin/batches.meta.txt"] = "\n".join(canonical.CIFAR10_CLASSES).encode()
    paths = declare("bad", "cifar10_binary", [write(tmp_path, "c10.tar.gz", canonical.tar_gz(members))])
    with pytest.raises(DatasetError, match=r"c10\.tar\.gz: label 12 outside the class range 0\.\.9"):
        prepare(tmp_path, "bad", paths, "32x32x3")
    assert_nothing_prepared(tmp_path)


def test_empty_class_folder(tmp_path):
    root = canonical.image_folder(tmp_path / "photos", per_class=10, size=16)
    (root / "emus").mkdir()
    declare_datasets({"photos": {"format": "image_folder", "path": str(root), "image_size": 16, "color_mode": "rgb"}})
    with pytest.raises(DatasetError, match=r"photos/emus: empty class folder"):
        prepare(tmp_path, "photos", [str(root)], "28x28x3")
    assert_nothing_prepared(tmp_path)


@pytest.mark.parametrize("name, content, problem", [
    ("notes.txt", b"taken on holiday", "not a PNG or JPEG image"),
    ("broken.png", b"\x89PNG but not really", "not a PNG or JPEG image"),
])
def test_non_image_file_in_an_image_folder(tmp_path, name, content, problem):
    root = canonical.image_folder(tmp_path / "photos", per_class=10, size=16)
    (root / "dogs" / name).write_bytes(content)
    (root / "dogs" / ".DS_Store").write_bytes(b"hidden files are skipped")
    declare_datasets({"photos": {"format": "image_folder", "path": str(root), "image_size": 16, "color_mode": "rgb"}})
    with pytest.raises(DatasetError, match=rf"dogs/{name}: {problem}"):
        prepare(tmp_path, "photos", [str(root)], "28x28x3")
    assert_nothing_prepared(tmp_path)


def test_unreadable_path_fails_when_the_config_is_read(tmp_path):
    with pytest.raises(ValueError, match=r"custom_datasets\.photos\.path: .*/nowhere: no such directory"):
        declare_datasets({"photos": {"format": "image_folder", "path": str(tmp_path / "nowhere"),
                                             "image_size": 16, "color_mode": "rgb"}})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file whatever its mode")
def test_unreadable_image_file(tmp_path):
    root = canonical.image_folder(tmp_path / "photos", per_class=10, size=16)
    locked = next((root / "cats").iterdir())
    locked.chmod(0)
    declare_datasets({"photos": {"format": "image_folder", "path": str(root), "image_size": 16, "color_mode": "rgb"}})
    with pytest.raises(DatasetError, match=rf"{locked.name}: cannot read the image"):
        prepare(tmp_path, "photos", [str(root)], "28x28x3")


def test_file_that_is_not_the_published_one_is_refused(tmp_path):
    paths = declare("my_mnist", "mnist_npz", [write(tmp_path, "mnist.npz", canonical.mnist_npz(200, 50))])
    (tmp_path / "mnist.npz").write_bytes(canonical.mnist_npz(200, 50, seed=9))  # replaced by hand
    with pytest.raises(DatasetError, match=r"mnist\.npz: sha256 [0-9a-f]{64} does not match the expected [0-9a-f]{64}"):
        prepare(tmp_path, "my_mnist", paths, "28x28x1")
    assert_nothing_prepared(tmp_path)


def test_custom_dataset_cannot_shadow_a_builtin():
    with pytest.raises(ValueError, match="taken by a built-in dataset"):
        declare_datasets({"mnist": {"format": "mnist_npz", "files": [{"url": "https://e.org/m.npz", "sha256": "0" * 64}]}})


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnsit'. Known: cifar10, cifar100, digits, fashion_mnist, mnist"):
        catalog.check_dataset_names(["digits", "mnsit"])


# ---------------------------------------------------------------- image folders as users' folders really are

def folder_dataset(root, **extra):
    declare_datasets({"photos": {"format": "image_folder", "path": str(root), "image_size": 16,
                                         "color_mode": "rgb", **extra}})


def test_os_metadata_files_and_folders_are_skipped_and_counted(tmp_path, caplog):
    root = canonical.image_folder(tmp_path / "photos", per_class=10, size=16)
    (root / "dogs" / "Thumbs.db").write_bytes(b"windows thumbnails")
    (root / "dogs" / "desktop.ini").write_bytes(b"[.ShellClassInfo]")
    (root / "cats" / "._img00000.jpg").write_bytes(b"macOS resource fork")
    (root / "cats" / ".hidden").mkdir()
    (root / "cats" / ".hidden" / "x.txt").write_bytes(b"inside a hidden folder")
    (root / ".DS_Store").write_bytes(b"at the top")
    folder_dataset(root)
    with caplog.at_level("INFO"):
        data = prepare(tmp_path, "photos", [str(root)], "16x16x3")
    assert sum(sum(data.manifest["counts"][split]) for split in ("train", "val", "test")) == 30
    assert "skipped 4 hidden or OS metadata" in caplog.text


def test_images_in_sub_folders_belong_to_the_top_level_class(tmp_path):
    root = canonical.image_folder(tmp_path / "photos", per_class=10, size=16)
    dated = root / "owls" / "2024" / "june"
    dated.mkdir(parents=True)
    for image in sorted((root / "owls").glob("img*"))[:4]:
        image.rename(dated / image.name)
    folder_dataset(root)
    data = prepare(tmp_path, "photos", [str(root)], "16x16x3")
    assert data.manifest["class_names"] == ["cats", "dogs", "owls"]
    assert [sum(data.manifest["counts"][split][2] for split in ("train", "val", "test"))] == [10]


def test_a_test_folder_with_other_classes_is_refused_by_name(tmp_path):
    train = canonical.image_folder(tmp_path / "train", per_class=10, size=16)
    test = canonical.image_folder(tmp_path / "test", classes=("cats", "dogs", "owls", "emus"), per_class=4, size=16)
    folder_dataset(train, test_path=str(test))
    with pytest.raises(DatasetError, match=r"test: its class folders differ from the training folder's; extra here: emus"):
        prepare(tmp_path, "photos", [str(train), str(test)], "16x16x3")
    assert_nothing_prepared(tmp_path)


def decoded(tmp_path, name, image, channels=1, size=8, **save):
    from convbench.data.formats import decode_image

    path = tmp_path / name
    image.save(path, **save)
    return decode_image(path, size, channels)


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    ramp = np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8)
    pixels = decoded(tmp_path, "ramp16.png", Image.fromarray(ramp))[..., 0]
    assert np.abs(pixels.astype(int) - np.round(ramp / 257)).max() <= 1
    assert (pixels == 255).mean() < 0.05  # Pillow's convert("L") clipped 99.6 % of a ramp to 255


def test_palette_alpha_cmyk_and_gray_alpha_images_keep_their_colours(tmp_path):
    from PIL import Image

    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 200
    rgb = decoded(tmp_path, "red.png", Image.fromarray(red), channels=3)
    palette = decoded(tmp_path, "red_p.png", Image.fromarray(red).convert("P", palette=Image.Palette.ADAPTIVE), channels=3)
    cmyk = decoded(tmp_path, "red_cmyk.jpg", Image.fromarray(red).convert("CMYK"), channels=3, quality=95)
    assert np.abs(palette.astype(int) - rgb).max() <= 2 and np.abs(cmyk.astype(int) - rgb).max() <= 12
    half = np.dstack([red, np.full((8, 8), 255, np.uint8)])
    half[:4, :, 3] = 0  # the top half transparent: laid on white
    rgba = decoded(tmp_path, "rgba.png", Image.fromarray(half, "RGBA"), channels=3)
    assert (rgba[:4] == 255).all() and np.abs(rgba[4:].astype(int) - rgb[4:]).max() <= 1
    gray_alpha = np.dstack([np.full((8, 8), 40, np.uint8), np.full((8, 8), 255, np.uint8)])
    assert (decoded(tmp_path, "la.png", Image.fromarray(gray_alpha, "LA")) == 40).all()


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    tall = np.zeros((16, 8, 3), np.uint8)
    tall[:8] = 255  # white top half, as the camera's viewer shows it after rotation
    image = Image.fromarray(np.rot90(tall, k=1).copy())  # stored sideways (8 high, 16 wide)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display", as phones write it
    pixels = decoded(tmp_path, "phone.jpg", image, channels=3, size=16, exif=exif, quality=100)
    assert pixels[:6].mean() > 200 and pixels[-6:].mean() < 50


def test_non_ascii_names_and_upper_case_suffixes_still_work(tmp_path):
    root = canonical.image_folder(tmp_path / "photos", classes=("chats noirs", "éléphants"), per_class=20, size=12)
    for index, image in enumerate(sorted((root / "éléphants").iterdir())):
        image.rename(image.with_suffix([".PNG", ".JPG", ".jpeg"][index % 3] if image.suffix == ".png" else ".JPG"))
    folder_dataset(root)
    data = prepare(tmp_path, "photos", [str(root)], "16x16x3")
    assert data.manifest["class_names"] == ["chats noirs", "éléphants"]


def test_fingerprint_follows_content_not_modification_times(tmp_path):
    from convbench.data.formats import folder_fingerprint

    root = canonical.image_folder(tmp_path / "photos", per_class=4, size=12)
    cache = tmp_path / "cache"
    first = folder_fingerprint([root], cache_dir=cache)
    image = next((root / "cats").iterdir())
    os.utime(image, ns=(1, 1))  # a touch, or a copy that changes modification times
    (root / "cats" / ".DS_Store").write_bytes(b"metadata")
    assert folder_fingerprint([root], cache_dir=cache) == first
    image.write_bytes(image.read_bytes() + b"\0")  # a real edit
    assert folder_fingerprint([root], cache_dir=cache) != first
    assert list(cache.iterdir())  # hashes are cached by (path, size, mtime, ctime)


def test_fingerprint_notices_other_pixels_of_the_same_size_and_modification_time(tmp_path):
    """`cp -p` of another version: same size, same mtime; only the change time (which nobody can set) moves."""
    from convbench.data.formats import folder_fingerprint

    root = canonical.image_folder(tmp_path / "photos", per_class=4, size=12)
    cache = tmp_path / "cache"
    first = folder_fingerprint([root], cache_dir=cache)
    image = next((root / "cats").glob("*.png"))
    before = image.stat()
    data = bytearray(image.read_bytes())
    data[-20] ^= 0xFF  # other bytes, same size
    image.write_bytes(bytes(data))
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert image.stat().st_size == before.st_size and image.stat().st_mtime_ns == before.st_mtime_ns
    assert folder_fingerprint([root], cache_dir=cache) != first


def test_the_schema_offers_exactly_the_declarable_formats():
    import yaml
    from conftest import PROJECT
    from convbench.data.formats import FORMATS

    schema = yaml.safe_load((PROJECT / "workflow/schemas/config.schema.yaml").read_text())
    offered = schema["properties"]["custom_datasets"]["additionalProperties"]["properties"]["format"]["enum"]
    assert offered == [name for name, form in FORMATS.items() if form.declarable] + ["image_folder"]


@pytest.mark.parametrize("native, size, channels", [((8, 8, 1), 28, 1), ((8, 8, 1), 32, 3), ((32, 32, 3), 16, 3),
                                                     ((32, 32, 3), 32, 1), ((28, 28, 1), 28, 1)])
def test_arrays_are_resized_as_image_files_are(tmp_path, native, size, channels):
    """MNIST/CIFAR arrays and image folders go through the same resize, so a model sees the same
    pixels whichever way its data came (and prediction on a PNG matches)."""
    from convbench.data.formats import decode_image, resize_array
    from PIL import Image

    images = np.random.default_rng(0).integers(0, 256, (3, *native), dtype=np.uint8)
    resized = resize_array(images, size, channels)
    assert resized.shape == (3, size, size, channels) and resized.dtype == np.uint8
    for image, expected in zip(images, resized):
        path = tmp_path / "image.png"
        Image.fromarray(image[..., 0] if native[-1] == 1 else image).save(path)
        np.testing.assert_array_equal(decode_image(path, size, channels), expected)
