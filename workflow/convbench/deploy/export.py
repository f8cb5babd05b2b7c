"""The export stage: a trained model in deployment formats, each checked in its job.

Keras writes every format (`model.export`: SavedModel; LiteRT, the TensorFlow Lite flatbuffer,
through TensorFlow's converter; ONNX through tf2onnx). Each artifact is then loaded by its own
runtime (TensorFlow, LiteRT's interpreter, onnxruntime) and run on the first CHECK_IMAGES test
images; its outputs must match Keras' within the format's tolerance. A float format that does not
match fails the job (a conversion bug); a quantised one below its agreement threshold is recorded
and flagged in the report (quantisation costs accuracy by design).
"""

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..evaluate.inference import class_probabilities, fit_to_model
from ..models.saving import load_model

log = logging.getLogger(__name__)

CHECK_IMAGES = 32
CHECKS_FILE = "checks.json"


def run_saved_model(path, images):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # held: its variables must outlive the call
    return loaded.serve(tf.constant(images)).numpy()


def run_litert(path, images):
    from ai_edge_litert.interpreter import Interpreter  # tf.lite.Interpreter is deprecated in its favour

    interpreter = Interpreter(model_path=str(path))
    given = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(given["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], images.astype(given["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def run_onnx(path, images):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


@dataclass(frozen=True)
class ExportFormat:
    name: str  # as listed under `export:` in the config
    path: str  # inside the experiment's export/ folder
    keras_format: str  # model.export(format=...)
    run: Callable  # (artifact path, images) -> probabilities, with the format's own runtime
    description: str
    check: str = "max_abs_difference"  # or "top1_agreement"
    threshold: float = 1e-5  # the largest difference, or the smallest agreement, that passes
    converter_options: dict = field(default_factory=dict)

    def passed(self, max_abs_difference, top1_agreement):
        if self.check == "max_abs_difference":
            return max_abs_difference <= self.threshold
        return top1_agreement >= self.threshold


EXPORT_FORMATS = {
    export.name: export
    for export in (
        ExportFormat("savedmodel", "saved_model", "tf_saved_model", run_saved_model,
                     "TensorFlow SavedModel (TF Serving, TensorFlow.js and TFLite converters)"),
        ExportFormat("tflite", "model.tflite", "litert", run_litert, "LiteRT (TensorFlow Lite) flatbuffer, float32"),
        ExportFormat("tflite_dynamic_range", "model_dynamic_range.tflite", "litert", run_litert,
                     "LiteRT with dynamic-range quantised weights (int8 weights, float activations; ~4x smaller)",
                     check="top1_agreement", threshold=0.99, converter_options={"optimizations": ["DEFAULT"]}),
        ExportFormat("onnx", "model.onnx", "onnx", run_onnx, "ONNX (onnxruntime, TensorRT, OpenVINO, ...)"),
    )
}


class ExportCheckFailed(RuntimeError):
    """An exported model does not compute what the Keras model computes."""

    recurs = True  # deterministic: a retry exports the same model (convbench.base.job_errors)


def float32_rendition(model):
    """The model computing in float32 with the same weights (mixed precision keeps its weights in
    float32 already): LiteRT and ONNX runtimes have no bfloat16 kernels for most ops, so a model
    trained in mixed_bfloat16 or mixed_float16 is exported as this rendition."""
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    clone = model.__class__.from_config(_in_float32(model.get_config()))
    clone.set_weights(model.get_weights())
    return clone


def _in_float32(config):
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _in_float32(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_in_float32(value) for value in config]
    return config


def converter_options(export):
    """The format's converter options as the converter takes them (TFLite's enums by name)."""
    options = dict(export.converter_options)
    if "optimizations" in options:
        import tensorflow as tf

        options["optimizations"] = [getattr(tf.lite.Optimize, name) for name in options["optimizations"]]
    return options


def size_bytes(path):
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def export_experiment(model_path, test_images, formats, out_dir):
    """Write each format into `out_dir` (all or nothing) with checks.json; returns the checks."""
    trained = load_model(model_path)
    model = float32_rendition(trained)
    # as the model takes them (input_size): an exported model expects images of its input size
    images = np.ascontiguousarray(fit_to_model(test_images[:CHECK_IMAGES], model))
    reference = class_probabilities(model, images)
    as_trained = reference if model is trained else class_probabilities(trained, images)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        checks = {name: export_one(model, EXPORT_FORMATS[name], staging, images, reference) for name in formats}
        if model is not trained:  # say so, and how far the float32 rendition is from the model as trained
            agreement = float(np.mean(reference.argmax(axis=1) == as_trained.argmax(axis=1)))
            for check in checks.values():
                policy = next(layer.dtype_policy.name for layer in trained.layers if layer.dtype_policy.name != "float32")
                check["rendition"] = (f"float32 rendition of a {policy} model; "
                                      f"top-1 agreement with it as trained: {agreement:.1%}")
                check["summary"] += f"; {check['rendition']}"
        (staging / CHECKS_FILE).write_text(json.dumps(checks, indent=2, sort_keys=True))
        failed = [f"{name}: {check['summary']}" for name, check in checks.items()
                  if not check["passed"] and EXPORT_FORMATS[name].check == "max_abs_difference"]
        if failed:
            raise ExportCheckFailed("exported model disagrees with Keras: " + "; ".join(failed))
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return checks


def export_one(model, export, folder, images, reference):
    """Export one format into `folder` and compare its outputs with Keras' on `images`."""
    path = folder / export.path
    model.export(str(path), format=export.keras_format, verbose=False, **converter_options(export))
    outputs = np.asarray(export.run(path, images), np.float32)
    difference = float(np.abs(outputs - reference).max())
    agreement = float(np.mean(outputs.argmax(axis=1) == reference.argmax(axis=1)))
    passed = export.passed(difference, agreement)
    measured = (f"max |difference| {difference:.2g}" if export.check == "max_abs_difference"
                else f"top-1 agreement {agreement:.1%}")
    limit = f"≤ {export.threshold:g}" if export.check == "max_abs_difference" else f"≥ {export.threshold:.0%}"
    summary = f"{measured} on {len(images)} test images ({'passed' if passed else 'failed'}: {limit})"
    size = size_bytes(path)  # a SavedModel is a folder: walk it once
    (log.info if passed else log.warning)("%s: %s, %d bytes", export.name, summary, size)
    return {
        "path": export.path, "bytes": size, "check": export.check, "threshold": export.threshold,
        "max_abs_difference": difference, "top1_agreement": agreement, "images": len(images), "passed": passed,
        "summary": summary,
    }
