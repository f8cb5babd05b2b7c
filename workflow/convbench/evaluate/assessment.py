"""The evaluate stage of one experiment as one call (metrics, test predictions, figures, anatomy), and
the copy of it the training job makes while its model is still in memory.

Starting TensorFlow and loading a model cost more than evaluating a small one (~5 s per job,
BENCHMARKS.md), so the training job evaluates its model right after training into a staging folder
outside Snakemake's outputs, stamped with everything the evaluation depended on: the evaluation
settings, the saved model's bytes and the prepared data's manifest. The evaluate job moves the staged
files into its outputs when the stamp matches its own inputs and params, without starting TensorFlow;
otherwise (a figure setting changed since, the copy is missing or half-moved, another model) it
evaluates in full. Either way the files are the same: tests/test_workflow.py compares the two.

Nothing heavy is imported at module level: the evaluate job decides before paying for TensorFlow.
"""

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from ..base.atomic import read_json, sha256, write_json
from .figures import evaluation_files

log = logging.getLogger(__name__)

STAMP = "stamp.json"


def assessment_stamp(settings, model_path, manifest_path, test_read=None):
    """What a staged evaluation is valid for: the settings, the model, the prepared data's manifest and, for a
    test split prepared apart, its manifest too (new test images: evaluated again, not adopted); `test_read`:
    (path, SHA-256) of the one the evaluation read (PreparedData.test_manifest), else the one on disk."""
    data = sha256(manifest_path)
    test_split = read_json(manifest_path).get("test_split")
    if test_split:
        test_manifest = Path(manifest_path).with_name(test_split)
        data += "+" + (test_read[1] if test_read else sha256(test_manifest) if test_manifest.exists() else "none")
    return {
        "settings": hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest(),
        "model": sha256(model_path),
        "data": data,
    }


def staging_directory(model_path):
    """Where the training job of the model at `model_path` stages its evaluation: beside the model,
    hidden, an output of no rule (Snakemake deletes outputs before a job runs)."""
    return Path(model_path).parent / ".staged-evaluation"


def experiment_title(wildcards):
    return f"{wildcards.arch} on {wildcards.dataset}, variant {wildcards.variant}, seed {wildcards.seed}"


def assess_experiment(model, model_path, data, history_path, outputs, settings, title):
    """Metrics, test predictions, every figure and the anatomy of one trained model into `outputs`
    ({key: path} of convbench.evaluate.figures.EVALUATION_FILES);
    `settings`: convbench.models.study.evaluation_settings."""
    import numpy as np

    from ..models.anatomy import anatomy
    from .evaluation import evaluate_experiment
    from .visualization import render_experiment

    metrics = evaluate_experiment(model_path, data, outputs["metrics"], outputs["predictions"], model=model)
    figures = render_experiment(
        model, data, history_path, metrics, np.load(outputs["predictions"]), outputs, title, settings["render"],
        filter_layer=settings["filter_layer"], feature_map_layers=settings["feature_map_layers"],
    )
    write_json(outputs["figures"], figures)
    by_hand = {key: value for key, value in figures["by_hand"].items() if key != "file"}
    write_json(outputs["anatomy"], {"about": dict(settings["about"]), **anatomy(model, by_hand)})


def stage_assessment(model, model_path, data, history_path, manifest_path, settings, title):
    """assess_experiment into the model's staging_directory, stamped once every file is written. A failure is logged, not
    raised: the training itself succeeded, and the evaluate job evaluates again and reports the error
    in its own log."""
    import keras

    directory = staging_directory(model_path)
    shutil.rmtree(directory, ignore_errors=True)
    if "test" not in data.manifest["shards"]:  # a test split prepared apart, not there yet: the evaluate job's
        log.info("no test split yet (its own job prepares it): the evaluate job evaluates the model")
        return False
    stamp = assessment_stamp(settings, model_path, manifest_path, data.test_manifest)
    # as in the evaluate job: anything built while evaluating computes in float32 (the model's layers keep their policy)
    keras.mixed_precision.set_global_policy("float32")
    start = time.perf_counter()
    try:
        assess_experiment(model, model_path, data, history_path, evaluation_files(directory), settings, title)
        write_json(directory / STAMP, stamp)
    except Exception:  # noqa: BLE001 - see the docstring
        log.exception("evaluating the model in the training job failed; the evaluate job will evaluate it again")
        shutil.rmtree(directory, ignore_errors=True)
        return False
    log.info("evaluated in the training job in %.1f s; staged in %s for the evaluate job",
             time.perf_counter() - start, directory)
    return True


def adopt_staged(outputs, settings, model_path, manifest_path):
    """Moves the evaluation staged beside `model_path` into `outputs` if it was made from this model,
    data and settings and is complete; returns whether it did (if not, nothing was moved)."""
    directory = staging_directory(model_path)
    staged = evaluation_files(directory)
    reason = None
    if not (directory / STAMP).exists():
        reason = "no staged evaluation"
    elif read_json(directory / STAMP) != assessment_stamp(settings, model_path, manifest_path):
        reason = "the staged evaluation was made from another model, data or settings"
    elif missing := [str(path) for path in staged.values() if not path.exists()]:
        reason = f"the staged evaluation is incomplete ({missing[0]} is missing)"
    if reason:
        log.info("%s: evaluating in full", reason)
        shutil.rmtree(directory, ignore_errors=True)
        return False
    for key, path in staged.items():
        Path(outputs[key]).parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, outputs[key])
    shutil.rmtree(directory, ignore_errors=True)
    log.info("adopted the evaluation the training job made of this model, data and settings (%s)", directory)
    return True
