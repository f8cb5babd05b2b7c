"""The evaluate stage: test-split metrics of a saved model, and the study's summary table."""

import logging

import keras
import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

from .atomic import atomic_path, write_json
from .training import evaluation_dataset

log = logging.getLogger(__name__)


def load_model(path):
    # safe_mode refuses models that would run arbitrary code (Lambda layers) on load.
    return keras.saving.load_model(path, safe_mode=True)


def evaluate_experiment(model_path, data, metrics_path, predictions_path, batch_size=256):
    model = load_model(model_path)
    x_test, y_test = data.scaled("test")
    test_ds = evaluation_dataset(x_test, y_test, data.num_classes, batch_size)
    scores = model.evaluate(test_ds, return_dict=True, verbose=0)
    probabilities = model.predict(test_ds.map(lambda x, y: x), verbose=0)
    predicted = probabilities.argmax(axis=1)
    names = data.class_names
    metrics = {
        "loss": float(scores["loss"]),
        "accuracy": float(accuracy_score(y_test, predicted)),
        "keras_accuracy": float(scores["accuracy"]),
        "test_images": int(len(y_test)),
        "per_class": classification_report(
            y_test, predicted, labels=range(len(names)), target_names=names, output_dict=True, zero_division=0
        ),
        "confusion_matrix": confusion_matrix(y_test, predicted, labels=range(len(names))).tolist(),
        "class_names": names,
    }
    log.info("test accuracy %.4f, loss %.4f on %d images", metrics["accuracy"], metrics["loss"], len(y_test))
    with atomic_path(predictions_path) as tmp:
        np.savez_compressed(tmp, labels=y_test, probabilities=probabilities)
    write_json(metrics_path, metrics)
    return metrics
