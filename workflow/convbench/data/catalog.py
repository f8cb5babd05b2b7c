"""The dataset catalog: what each dataset is (format, native shape, classes, its raw files with their
published hashes and URLs), the built-in ones and those a study declares under `custom_datasets`.

Nothing here changes after import: a study's catalog is resolved from its config by one pure function,
resolve_datasets, which the Snakefile calls once when it reads the workflow and each job calls again
on the same config (a job's spec passed as a param would make Snakemake rerun every prepared dataset
whenever a mirror URL is added). Read at parse time, so no heavy imports; preparing a dataset is
convbench.data.datasets, reading a prepared one convbench.data.prepared.
"""

from dataclasses import dataclass
from types import MappingProxyType

from . import formats


@dataclass(frozen=True)
class RemoteFile:
    name: str  # file name under resources/datasets/<dataset>/
    sha256: str
    urls: tuple  # the canonical URL first, then mirrors
    size: int | None = None  # bytes, for the README and the log


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    format: str  # a key of formats.FORMATS, or "image_folder"
    image_shape: tuple  # native (height, width, channels)
    num_classes: int
    source: str
    files: tuple = ()  # RemoteFile, fetched by the fetch_file rule (digits: exported by fetch_digits)
    class_names: tuple | None = None  # None: read from the data (CIFAR's meta files, folder names)
    folders: tuple = ()  # image_folder: (training folder, test folder or None)


TF_DATASETS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FASHION_S3 = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
TORONTO = "https://www.cs.toronto.edu/~kriz/"


def fashion_file(name, sha256, size):
    return RemoteFile(name, sha256, (TF_DATASETS + name, FASHION_S3 + name), size)


BUILTIN_DATASETS = MappingProxyType({
    "digits": DatasetInfo(
        "digits", "digits", (8, 8, 1), 10, "scikit-learn's bundled UCI optical digits (offline)",
        files=(RemoteFile("digits.npz", None, ()),),
    ),
    "mnist": DatasetInfo(
        "mnist", "mnist_npz", (28, 28, 1), 10, "MNIST (LeCun et al. 1998), Keras' npz copy",
        files=(RemoteFile("mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
                          (TF_DATASETS + "mnist.npz",), 11_490_434),),
        class_names=tuple(str(i) for i in range(10)),
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", "idx", (28, 28, 1), 10, "Fashion-MNIST (Xiao et al. 2017), gzipped IDX",
        files=(
            fashion_file("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26_421_880),
            fashion_file("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29_515),
            fashion_file("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4_422_102),
            fashion_file("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5_148),
        ),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "cifar10": DatasetInfo(
        "cifar10", "cifar10_binary", (32, 32, 3), 10, "CIFAR-10 (Krizhevsky 2009), binary version",
        files=(RemoteFile("cifar-10-binary.tar.gz", "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                          (TORONTO + "cifar-10-binary.tar.gz",), 170_052_171),),
    ),
    "cifar100": DatasetInfo(
        "cifar100", "cifar100_binary", (32, 32, 3), 100, "CIFAR-100 (Krizhevsky 2009), binary version, fine labels",
        files=(RemoteFile("cifar-100-binary.tar.gz", "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
                          (TORONTO + "cifar-100-binary.tar.gz",), 168_513_733),),
    ),
})
BUILTIN = tuple(BUILTIN_DATASETS)


def resolve_datasets(declared=None):
    """The study's catalog, read-only: the built-in datasets and those declared under
    `custom_datasets` (already schema-validated)."""
    catalog = dict(BUILTIN_DATASETS)
    for name, spec in (declared or {}).items():
        if name in BUILTIN_DATASETS:
            raise ValueError(f"custom_datasets.{name}: the name is taken by a built-in dataset; choose another")
        catalog[name] = custom_dataset(name, spec)
    return MappingProxyType(catalog)


def get_dataset(name, catalog=BUILTIN_DATASETS) -> DatasetInfo:
    try:
        return catalog[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(catalog))}") from None


def check_dataset_names(names, catalog=BUILTIN_DATASETS, key="datasets"):
    unknown = [name for name in names if name not in catalog]
    if unknown:
        raise ValueError(
            f"{key}: unknown dataset {unknown[0]!r}. Known: {', '.join(sorted(catalog))} "
            "(declare your own under custom_datasets)."
        )


def custom_dataset(name, spec):
    fmt = spec["format"]
    description = spec.get("description", f"declared in config.yaml ({fmt})")
    if fmt == "image_folder":
        folders = (str(spec["path"]), str(spec["test_path"]) if spec.get("test_path") else None)
        try:
            classes = formats.class_folders(folders[0])
        except formats.DatasetError as error:
            raise ValueError(f"custom_datasets.{name}.path: {error}") from None
        channels = 1 if spec["color_mode"] == "grayscale" else 3
        size = spec["image_size"]
        return DatasetInfo(name, fmt, (size, size, channels), len(classes), description, class_names=tuple(classes), folders=folders)
    files = tuple(
        RemoteFile(entry.get("name") or entry["url"].rstrip("/").rsplit("/", 1)[-1], entry["sha256"].lower(),
                   (entry["url"], *entry.get("mirrors", ())))
        for entry in spec["files"]
    )
    form = formats.FORMATS[fmt]
    if len(files) != form.files:
        raise ValueError(f"custom_datasets.{name}.files: format {fmt} takes {form.files} file(s), got {len(files)}")
    if len({f.name for f in files}) != len(files):
        raise ValueError(f"custom_datasets.{name}.files: two files are named alike; give each a distinct name")
    shape = form.shape
    if form.sized and spec.get("image_size"):
        shape = (spec["image_size"], spec["image_size"], form.shape[-1])
    class_names = tuple(spec["class_names"]) if spec.get("class_names") else None
    num_classes = form.classes or (len(class_names) if class_names else 10)
    if class_names and len(class_names) != num_classes:
        raise ValueError(f"custom_datasets.{name}.class_names: format {fmt} has {num_classes} classes, got {len(class_names)} names")
    return DatasetInfo(name, fmt, shape, num_classes, description, files=files, class_names=class_names)


def remote_file(info, file_name) -> RemoteFile:
    for remote in info.files:
        if remote.name == file_name:
            return remote
    raise KeyError(f"dataset {info.name!r} has no file {file_name!r}")


def raw_dir(dataset):
    """Where the fetch rules put a dataset's raw files; place files here by hand on air-gapped machines."""
    return f"resources/datasets/{dataset}"


def separate_test(info):
    """Whether the dataset's test split has a source of its own (an image folder's test_path). It is then
    prepared by a job of its own (prepare_test_split), beside the training and validation splits, so that new
    test images re-evaluate every model and retrain none: training reads only those two splits."""
    return info.format == "image_folder" and bool(info.folders[1])


def raw_inputs(info):
    """What preparing a dataset's training and validation splits (and a test split carved from the same
    source) reads: its raw files, or its training image folder."""
    if info.format == "image_folder":
        return [info.folders[0]]
    return [f"{raw_dir(info.name)}/{remote.name}" for remote in info.files]


def spec_name(size, channels):
    """File-name form of an input spec, e.g. '28x28x1'."""
    return f"{size}x{size}x{channels}"


def parse_spec(spec):
    height, width, channels = (int(part) for part in spec.split("x"))
    return height, width, channels
