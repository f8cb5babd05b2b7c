"""The predict stage: a trained model's top-k classes for new PNG/JPEG images.

Each image is treated exactly as the model's training data was: decoded to 8 bits in the model's
colour mode (formats.decode_image, as image folders are), resized to the model's input size the
way its prepared data was resized, and scaled with the prepared data's offset and scale. These
facts travel with the model in train_meta.json (older experiments: the prepared manifest).

Every check of the input (files, folders, model folder) runs before TensorFlow starts.
"""

import csv
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base.atomic import atomic_path, read_json
from ..data.catalog import spec_name
from ..data.formats import RESIZE_PILLOW, DatasetError, decode_image, is_metadata
from ..data.prepared import scale_images
from ..models.saving import DamagedModel, load_model

log = logging.getLogger(__name__)

CHUNK = 1024  # images decoded at once: bounded memory; a multiple of inference.BATCH_SIZE, so the same batches as evaluation


def resize_like_tensorflow(image, size, channels):
    """One uint8 image resized as data was prepared before the Pillow resize (tf.image.resize, bilinear,
    antialiased), for models whose manifest does not say RESIZE_PILLOW."""
    import tensorflow as tf

    resized = tf.convert_to_tensor(image)
    if resized.shape[:2] != (size, size):
        resized = tf.image.resize(tf.cast(resized, tf.float32), (size, size), antialias=True)
    if resized.shape[-1] == 1 and channels == 3:
        resized = tf.image.grayscale_to_rgb(resized)
    return np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)


class PredictError(ValueError):
    """Bad input to prediction, said in one line."""


@dataclass
class Predictor:
    model: object
    class_names: list
    input_shape: tuple
    preprocessing: dict
    source: str

    def image(self, path):
        """One image file as the model's training data: uint8 (size, size, channels)."""
        size, _, channels = self.input_shape
        if self.preprocessing.get("resize") == RESIZE_PILLOW:
            return decode_image(path, size, channels)
        native = decode_image(path, None, channels)
        return native if native.shape == self.input_shape else resize_like_tensorflow(native, size, channels)

    def probabilities(self, images):
        from ..evaluate.inference import class_probabilities

        return class_probabilities(self.model, scale_images(images, {"preprocessing": self.preprocessing}))


def load_predictor(location):
    """The model in an experiment folder (or a .keras file) with the facts of its training data."""
    model_path, data = model_file(location)
    try:
        model = load_model(model_path)
    except DamagedModel as error:
        raise PredictError(str(error)) from error
    except Exception as error:  # Keras raises many kinds for a damaged archive
        raise PredictError(f"{model_path}: cannot load the model ({type(error).__name__}: {error})") from error
    shape = tuple(data["input_shape"])  # the prepared data's; the model may take another size (input_size)
    if model.input_shape[-1] != shape[-1]:
        raise PredictError(f"{model_path}: the model takes {model.input_shape[-1]} channels, its train_meta.json says {shape[-1]}")
    return Predictor(model, list(data["class_names"]), shape, data["preprocessing"], str(model_path))


def model_file(location):
    """(model.keras path, training-data facts) of an experiment folder or a .keras file."""
    path = Path(location)
    if path.is_dir():
        model_path = path / "model.keras"
        if not model_path.is_file():
            raise PredictError(f"{path}: no model.keras in this folder; give an experiment folder "
                               "(results/experiments/<dataset>/<arch>/<variant>/seed<N>) or a .keras file")
    elif not path.exists():
        raise PredictError(f"{path}: no such model file or experiment folder")
    elif path.suffix != ".keras":
        raise PredictError(f"{path}: not a .keras model file or an experiment folder")
    else:
        model_path = path
    return model_path, training_data_facts(model_path.parent)


def training_data_facts(folder):
    """class_names, input_shape and preprocessing of the data a model was trained on."""
    meta_path = folder / "train_meta.json"
    if not meta_path.is_file():
        raise PredictError(f"{folder}: no train_meta.json beside the model, so how its training images were "
                           "scaled is unknown; copy it along with model.keras")
    meta = read_json(meta_path)
    if "data" in meta:
        return meta["data"]
    # experiments trained before train_meta.json carried these facts: the prepared manifest has them
    manifest_name = Path("prepared", meta["dataset"], spec_name(meta["input_shape"][0], meta["input_shape"][2]) + ".json")
    for parent in folder.parents:
        if (parent / manifest_name).is_file():
            return read_json(parent / manifest_name)
    raise PredictError(f"{meta_path}: records no training-data facts and {manifest_name} is not found above it")


def image_files(locations):
    """Every file named, and every file in the folders named (sub-folders included, sorted;
    hidden and OS metadata files such as .DS_Store and Thumbs.db skipped)."""
    files = []
    for location in map(Path, locations):
        if location.is_dir():
            found = []
            for directory, folders, names in os.walk(location):
                folders[:] = sorted(name for name in folders if not is_metadata(name))
                found.extend(Path(directory, name) for name in sorted(names) if not is_metadata(name))
            if not found:
                raise PredictError(f"{location}: no images in this folder")
            files.extend(found)
        elif location.exists():
            files.append(location)
        else:
            raise PredictError(f"{location}: no such file or folder")
    if not files:
        raise PredictError("no images given")
    return files


def predict_files(predictor, files, *, top_k=3, skip_bad=False):
    """(rows, skipped): one row per readable image with its top-k classes and probabilities; a
    file that is not a readable PNG/JPEG stops everything, or with skip_bad is skipped and listed."""
    k = min(top_k, len(predictor.class_names))
    rows, skipped = [], []
    for start in range(0, len(files), CHUNK):
        images, kept = [], []
        for path in files[start : start + CHUNK]:
            try:
                images.append(predictor.image(path))
                kept.append(path)
            except DatasetError as error:
                if not skip_bad:
                    raise PredictError(f"{error} (--skip-bad skips such files)") from None
                skipped.append(str(error))  # the caller reports them (the CLI on stderr, the rule in its log)
        if not images:
            continue
        for path, probabilities in zip(kept, predictor.probabilities(np.stack(images))):
            best = np.argsort(-probabilities, kind="stable")[:k]
            row = {"file": str(path)}
            for rank, index in enumerate(best, start=1):
                row[f"class_{rank}"] = predictor.class_names[index]
                row[f"probability_{rank}"] = f"{probabilities[index]:.9g}"  # 9 digits: the float32 exactly
            rows.append(row)
        log.info("predicted %d of %d images", start + len(images), len(files))
    if not rows:
        raise PredictError(f"none of the {len(files)} files is a readable PNG or JPEG image")
    return rows, skipped


def write_predictions(rows, output=None):
    """The rows as CSV, to `output` (atomically) or to standard output."""
    if output in (None, "-"):
        _write_csv(rows, sys.stdout)
        return
    with atomic_path(output) as tmp, open(tmp, "w", newline="") as handle:
        _write_csv(rows, handle)


def _write_csv(rows, handle):
    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def check_inputs(model_location, image_locations, top_k=3):
    """The image files, after every check that needs no TensorFlow."""
    if top_k < 1:
        raise PredictError(f"--top-k must be at least 1, not {top_k}")
    model_file(model_location)
    return image_files(image_locations)


def predict(model_location, image_locations, output=None, *, top_k=3, skip_bad=False):
    """The whole of `convbench predict`: nothing is written unless every step succeeded."""
    files = check_inputs(model_location, image_locations, top_k)
    predictor = load_predictor(model_location)
    rows, skipped = predict_files(predictor, files, top_k=top_k, skip_bad=skip_bad)
    write_predictions(rows, output)
    return rows, skipped
