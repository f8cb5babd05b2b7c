"""Saving and loading an experiment's model file: reproducible bytes on save, its recorded SHA-256
checked on load, and a damaged file set aside so that the next run retrains it."""

import os
import zipfile
from pathlib import Path

from ..base.atomic import read_json, sha256


class DamagedModel(RuntimeError):
    """A saved model that is not the file its training job wrote (cut short, overwritten)."""

    recurs = True  # set aside: only the next run's training job remakes it (convbench.base.job_errors)


def load_model(path):
    """A saved convbench model. safe_mode refuses models that would run arbitrary code (Lambda layers).

    A model.keras whose content differs from the hash its training job recorded in train_meta.json
    beside it, or that Keras cannot open, is moved aside to model.keras.damaged: the next run of
    Snakemake finds the training job's output missing and trains it again (DamagedModel says so).
    """
    import keras

    from ..base import schedules  # noqa: F401  (registers the warm-up schedule a saved optimizer may use)
    from .layers import imagenet_preprocessing_class, local_response_normalization_class

    imagenet_preprocessing_class()  # registers the custom layers convbench models may contain
    local_response_normalization_class()
    path = Path(path)
    recorded = recorded_model_hash(path)
    if recorded and sha256(path) != recorded:
        raise set_aside(path, "its SHA-256 differs from the one its training job recorded in train_meta.json")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        if not zipfile.is_zipfile(path) and recorded is not None:
            raise set_aside(path, "Keras cannot open it as a .keras archive") from error
        raise


def recorded_model_hash(path):
    """The SHA-256 train_meta.json records for an experiment's model.keras ("" for a model trained
    before it was recorded); None for any other model file."""
    meta = path.with_name("train_meta.json")
    if path.name != "model.keras" or not meta.exists():
        return None
    return read_json(meta).get("model_sha256", "")


def set_aside(path, why):
    damaged = path.with_name(path.name + ".damaged")
    os.replace(path, damaged)
    return DamagedModel(f"{path} is damaged: {why}. Moved to {damaged.name}; run snakemake again to retrain it")


def save_model(model, path):
    """model.save, made reproducible: Keras writes each shared dtype policy's memory address
    (`shared_object_id`) into config.json and the file's time into the archive, so the same model
    saved twice differed in bytes and even in size. Both are taken out (loading does not need them:
    every layer then gets its own copy of the policy). Only metadata.json's save date still differs."""
    import json
    import zipfile

    model.save(path)
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info.filename)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            if info.filename == "config.json":
                data = json.dumps(_without_shared_ids(json.loads(data))).encode()
            stable = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            stable.compress_type, stable.external_attr = info.compress_type, info.external_attr
            archive.writestr(stable, data)


def _without_shared_ids(value):
    if isinstance(value, dict):
        return {key: _without_shared_ids(item) for key, item in value.items() if key != "shared_object_id"}
    if isinstance(value, list):
        return [_without_shared_ids(item) for item in value]
    return value
