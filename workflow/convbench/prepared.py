"""The prepared-data format every stage after preparation reads: one .npz of uint8 splits and its
JSON manifest (class names, counts, shapes, source hashes, scaling). NumPy only: reading prepared
data needs none of the packages that prepared it."""

from dataclasses import dataclass

import numpy as np

from .atomic import read_json


@dataclass
class PreparedData:
    arrays: dict
    manifest: dict

    @property
    def class_names(self):
        return self.manifest["class_names"]

    @property
    def num_classes(self):
        return self.manifest["num_classes"]

    @property
    def input_shape(self):
        return tuple(self.manifest["input_shape"])

    def raw(self, split):
        """uint8 images and int labels of a split."""
        return self.arrays[f"x_{split}"], self.arrays[f"y_{split}"]

    def scaled(self, split):
        """float32 images as the model sees them, and int labels."""
        images, labels = self.raw(split)
        return scale_images(images, self.manifest), labels


def scale_images(images, manifest):
    params = manifest["preprocessing"]
    offset = np.asarray(params["offset"], np.float32)
    scale = np.asarray(params["scale"], np.float32)
    return (images.astype(np.float32) - offset) * scale


def load_prepared(npz_path, manifest_path) -> PreparedData:
    with np.load(npz_path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return PreparedData(arrays, read_json(manifest_path))
