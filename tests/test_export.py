"""Export to deployment formats: every format written by Keras, run by its own runtime, checked."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
from conftest import planned_jobs, run_snakemake, train_small
from convbench.deploy import export
from convbench.deploy.export import EXPORT_FORMATS, ExportCheckFailed, export_experiment


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_prepared):
    out = tmp_path_factory.mktemp("export-model")
    train_small(digits_prepared, "bn_cnn", out, epochs=2)  # BatchNorm: folded differently by each converter
    return out / "m.keras", digits_prepared.scaled("test")[0]


def test_every_format_is_written_and_agrees_with_keras(trained, tmp_path):
    model_path, test_images = trained
    checks = export_experiment(model_path, test_images, list(EXPORT_FORMATS), tmp_path / "export")
    assert set(checks) == set(EXPORT_FORMATS)
    for name, check in checks.items():
        # float formats must pass; a quantised one's agreement is measured (a two-epoch model's
        # low-confidence predictions may flip one of 32 images), and its verdict follows its threshold
        quantised = EXPORT_FORMATS[name].check == "top1_agreement"
        assert check["passed"] == (check["top1_agreement"] >= check["threshold"]) if quantised else check["passed"], (
            name, check)
        assert (tmp_path / "export" / EXPORT_FORMATS[name].path).exists()
        assert check["images"] == 32
    assert checks["savedmodel"]["max_abs_difference"] <= 1e-5 and checks["onnx"]["max_abs_difference"] <= 1e-5
    assert checks["tflite_dynamic_range"]["top1_agreement"] >= 0.9  # broken quantisation would be near chance
    assert checks["tflite_dynamic_range"]["max_abs_difference"] > 0  # really quantised: not the float model
    assert checks["tflite_dynamic_range"]["bytes"] < checks["tflite"]["bytes"] / 3
    assert json.loads((tmp_path / "export" / "checks.json").read_text()) == checks
    assert not list(tmp_path.glob(".export.*"))  # the staging folder is gone


def disturbed(name, by):
    """The export format `name`, its runtime's outputs moved by `by`."""
    original = EXPORT_FORMATS[name]
    return dataclasses.replace(original, run=lambda path, images: original.run(path, images) + by)


def test_a_float_export_that_disagrees_fails_and_leaves_nothing(trained, tmp_path, monkeypatch):
    model_path, test_images = trained
    monkeypatch.setitem(export.EXPORT_FORMATS, "onnx", disturbed("onnx", 1e-3))
    with pytest.raises(ExportCheckFailed, match=r"onnx: max \|difference\| 0\.001 on 32 test images \(failed: ≤ 1e-05\)"):
        export_experiment(model_path, test_images, ["savedmodel", "onnx"], tmp_path / "export")
    assert list(tmp_path.iterdir()) == []


def test_a_quantised_export_below_its_agreement_is_recorded_not_fatal(trained, tmp_path, monkeypatch):
    model_path, test_images = trained
    flip = np.zeros(10, np.float32)
    flip[np.arange(10) % 2 == 0] = 5.0  # moves the top class of about half the images
    monkeypatch.setitem(export.EXPORT_FORMATS, "tflite_dynamic_range", disturbed("tflite_dynamic_range", flip))
    checks = export_experiment(model_path, test_images, ["tflite_dynamic_range"], tmp_path / "export")
    assert not checks["tflite_dynamic_range"]["passed"] and "failed: ≥ 99%" in checks["tflite_dynamic_range"]["summary"]


def test_a_mixed_precision_model_is_exported_as_its_float32_rendition(tmp_path, digits_prepared):
    """LiteRT has no bfloat16 kernels for most ops: a model trained in mixed_bfloat16 is exported
    computing in float32 (same weights), and the checks say so."""
    import keras

    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        train_small(digits_prepared, "simple_cnn", tmp_path, epochs=1)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    checks = export_experiment(tmp_path / "m.keras", digits_prepared.scaled("test")[0], ["tflite", "onnx"],
                               tmp_path / "export")
    for check in checks.values():
        assert check["passed"] and "float32 rendition of a mixed_bfloat16 model" in check["rendition"]


def test_schema_lists_exactly_the_export_formats():
    import yaml
    from conftest import PROJECT

    schema = yaml.safe_load((PROJECT / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["properties"]["export"]["items"]["enum"] == list(EXPORT_FORMATS)


@pytest.mark.integration
def test_export_through_the_workflow_adds_only_export_jobs_and_a_report_section(local_study, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(local_study, study, symlinks=True)
    shutil.rmtree(study / "results/predictions", ignore_errors=True)
    formats = "export=[savedmodel, tflite, tflite_dynamic_range, onnx]"
    output = run_snakemake(study, "--cores", "2", config=[formats])
    assert planned_jobs(output) == {"all": 1, "build_report": 1, "export_model": 2}
    html = (study / "results/report.html").read_text()
    for arch in ("simple_cnn", "bn_cnn"):
        checks = json.loads((study / f"results/experiments/digits/{arch}/default/seed1/export/checks.json").read_text())
        assert all(checks[name]["passed"] for name in ("savedmodel", "tflite", "onnx"))  # else the job fails
        quantised = checks["tflite_dynamic_range"]  # below 99 % agreement it is flagged, not fatal
        assert 0 <= quantised["top1_agreement"] <= 1 and quantised["summary"] in html
    assert 'id="Exports"' in html and "export/model_dynamic_range.tflite" in html
