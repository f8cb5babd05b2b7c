"""The evaluate stage: test-split metrics of a saved model (its speed: convbench.evaluate.cost)."""

import logging
import os

import numpy as np
import tensorflow as tf
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, top_k_accuracy_score

from ..base.atomic import atomic_path, write_json
from ..models.saving import load_model
from .inference import BATCH_SIZE, split_probabilities

log = logging.getLogger(__name__)


def expected_calibration_error(probabilities, labels, bins=15):
    """Gap between confidence and accuracy, averaged over equal-width confidence bins (Guo et al. 2017)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


CLIP = 1e-7  # Keras' epsilon: the cross-entropy of a probability of 0 is finite, as in training


def cross_entropy(probabilities, labels):
    """Mean categorical cross-entropy of the true classes' probabilities (clipped as Keras clips
    them): the predictions' own loss. Not the compiled loss, whose label smoothing and weight
    penalties would make models trained with other settings incomparable (a perfect model scores
    0.82 under smoothing 0.1, an untrained resnet20 +0.14 from its penalty)."""
    if not len(labels):
        return float("nan")
    true_class = np.asarray(probabilities, np.float64)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(true_class, CLIP, 1 - CLIP)).mean())


def count_flops(model):
    """Floating-point operations of one forward pass on one image, from TensorFlow's graph profiler."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen, _ = convert_variables_to_constants_v2_as_graph(concrete)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(
        graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
    )
    return int(profile.total_float_ops)


def evaluate_experiment(model_path, data, metrics_path, predictions_path, batch_size=BATCH_SIZE, model=None):
    """Test-split metrics and class probabilities of the saved model (`model`: it, already loaded)."""
    model = model or load_model(model_path)
    y_test = data.labels("test")
    probabilities = split_probabilities(model, data, "test", batch_size)  # read a batch at a time
    predicted = probabilities.argmax(axis=1)
    names = data.class_names
    metrics = {
        "loss": cross_entropy(probabilities, y_test),
        "accuracy": float(accuracy_score(y_test, predicted)),
        "top5_accuracy": (
            float(top_k_accuracy_score(y_test, probabilities, k=5, labels=range(len(data.class_names))))
            if data.num_classes > 10 else None
        ),
        "expected_calibration_error": expected_calibration_error(probabilities, y_test),
        "parameters": int(model.count_params()),
        "model_bytes": os.path.getsize(model_path),
        "flops_per_image": count_flops(model),
        "test_images": int(len(y_test)),
        "per_class": classification_report(
            y_test, predicted, labels=range(len(names)), target_names=names, output_dict=True, zero_division=0
        ),
        "confusion_matrix": confusion_matrix(y_test, predicted, labels=range(len(names))).tolist(),
        "class_names": names,
    }
    log.info("test accuracy %.4f, cross-entropy %.4f on %d images", metrics["accuracy"], metrics["loss"], len(y_test))
    with atomic_path(predictions_path) as tmp:
        np.savez_compressed(tmp, labels=y_test, probabilities=probabilities)
    write_json(metrics_path, metrics)
    return metrics
