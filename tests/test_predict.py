"""Prediction on new images: `convbench predict` and the `predict` Snakemake target, on the tiny study."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_snakemake
from convbench.data.prepared import load_prepared
from convbench.deploy.predict import PredictError, Predictor, load_predictor, predict
from PIL import Image

pytestmark = pytest.mark.integration

CONVBENCH = Path(sys.executable).parent / "convbench"  # the console script pip install -e . puts beside python
EXPERIMENT = "results/experiments/digits/{arch}/default/seed1"


@pytest.fixture(scope="module")
def test_pngs(local_study, tmp_path_factory):
    """The study's test images as PNG files (in a sub-folder, beside a .DS_Store), in test order."""
    data = load_prepared(local_study / "results/prepared/digits/28x28x1", local_study / "results/prepared/digits/28x28x1.json")
    images, _ = data.raw("test")
    folder = tmp_path_factory.mktemp("pngs")
    (folder / "batch").mkdir()
    (folder / ".DS_Store").write_bytes(b"\0\1junk")
    for index, image in enumerate(images):
        Image.fromarray(image[..., 0], "L").save(folder / "batch" / f"{index:04d}.png")
    return folder


def read_probabilities(csv_path, class_names):
    """(n, classes) probabilities from a predictions CSV written with --top-k = number of classes."""
    frame = pd.read_csv(csv_path, dtype=str)
    out = np.zeros((len(frame), len(class_names)), np.float32)
    for rank in range(1, len(class_names) + 1):
        columns = frame[f"class_{rank}"].map(class_names.index).to_numpy()
        out[np.arange(len(frame)), columns] = frame[f"probability_{rank}"].astype(np.float32).to_numpy()
    return frame, out


def test_cli_predictions_on_png_files_equal_the_evaluation_exactly(local_study, test_pngs, tmp_path):
    experiment = local_study / EXPERIMENT.format(arch="bn_cnn")
    output = tmp_path / "predictions.csv"
    result = subprocess.run([str(CONVBENCH), "predict", str(experiment), str(test_pngs), "--top-k", "10",
                             "--output", str(output), "--threads", "2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    frame, probabilities = read_probabilities(output, [str(digit) for digit in range(10)])
    assert [Path(name).name for name in frame["file"]] == sorted(path.name for path in (test_pngs / "batch").iterdir())
    evaluated = np.load(experiment / "test_predictions.npz")["probabilities"]
    np.testing.assert_array_equal(probabilities, evaluated)
    assert f"{len(frame)} images predicted" in result.stderr


def test_any_size_and_colour_mode_is_converted_like_the_training_data(local_study, tmp_path):
    predictor = load_predictor(local_study / EXPERIMENT.format(arch="simple_cnn"))
    rgb = np.zeros((60, 100, 3), np.uint8)
    rgb[10:50, 45:55] = (250, 240, 230)  # a bright bar on black: a "1"
    Image.fromarray(rgb).save(tmp_path / "wide.jpg", quality=95)
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "alpha.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp_path / "deep.png")  # 16-bit grayscale
    for name in ("wide.jpg", "alpha.png", "deep.png"):
        image = predictor.image(tmp_path / name)
        assert image.shape == (28, 28, 1) and image.dtype == np.uint8
        assert image.max() > 200 and image[:, :8].max() < 30  # resized to the model's size, bar in the middle
    rows, skipped = predict(local_study / EXPERIMENT.format(arch="simple_cnn"), [tmp_path], top_k=2)
    assert len(rows) == 3 and not skipped and list(rows[0]) == ["file", "class_1", "probability_1", "class_2", "probability_2"]


def test_a_model_prepared_before_pillow_resizing_gets_tensorflows_resize(tmp_path):
    import tensorflow as tf

    gray = np.zeros((60, 100), np.uint8)
    gray[10:50, 45:55] = 250
    Image.fromarray(gray).save(tmp_path / "wide.png")
    old = Predictor(model=None, class_names=["0", "1"], input_shape=(28, 28, 1),
                    preprocessing={"offset": [0.0], "scale": [1 / 255]}, source="old")  # no "resize": prepared by TF
    expected = tf.image.resize(gray[..., None].astype(np.float32), (28, 28), antialias=True).numpy()
    np.testing.assert_array_equal(old.image(tmp_path / "wide.png"), np.round(expected).astype(np.uint8))


def bad_inputs(tmp_path):
    good = tmp_path / "images"
    good.mkdir()
    Image.new("L", (28, 28), 128).save(good / "a.png")
    Image.new("RGB", (30, 30), (10, 200, 30)).save(good / "b.jpg")
    (good / "notes.txt").write_text("not an image")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(tmp_path / "noise.png")
    png = (tmp_path / "noise.png").read_bytes()
    (good / "cut.png").write_bytes(png[: len(png) * 2 // 3])  # a broken transfer: header fine, pixels cut
    return good


def test_a_bad_file_stops_everything_before_anything_is_written(local_study, tmp_path):
    images = bad_inputs(tmp_path)
    output = tmp_path / "out.csv"
    with pytest.raises(PredictError, match=r"cut\.png: cannot read the image.*--skip-bad"):
        predict(local_study / EXPERIMENT.format(arch="simple_cnn"), [images], output)
    assert not output.exists() and not list(tmp_path.glob(".out.csv*"))


def test_skip_bad_skips_and_names_each_bad_file(local_study, tmp_path):
    images = bad_inputs(tmp_path)
    rows, skipped = predict(local_study / EXPERIMENT.format(arch="simple_cnn"), [images], tmp_path / "out.csv",
                            skip_bad=True)
    assert [Path(row["file"]).name for row in rows] == ["a.png", "b.jpg"]
    assert len(skipped) == 2 and "cut.png" in skipped[0] and "notes.txt: not a PNG or JPEG" in skipped[1]
    assert len(pd.read_csv(tmp_path / "out.csv")) == 2


def test_cli_skip_bad_names_each_skipped_file_once(local_study, tmp_path):
    images = bad_inputs(tmp_path)
    result = subprocess.run([str(CONVBENCH), "predict", str(local_study / EXPERIMENT.format(arch="simple_cnn")),
                             str(images), "--skip-bad", "--output", str(tmp_path / "out.csv"), "--threads", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    skipped = [line for line in lines if line.startswith("skipped ")]
    assert len(skipped) == 2 and "cut.png" in skipped[0] and "notes.txt" in skipped[1]
    assert lines == skipped + [f"2 images predicted -> {tmp_path / 'out.csv'} (2 skipped)"]


@pytest.mark.parametrize("case, message", [
    ("empty folder", "no images in this folder"),
    ("missing image", "no such file or folder"),
    ("model folder without a model", "no model.keras in this folder"),
    ("not a model", "not a .keras model file or an experiment folder"),
    ("only bad files", "none of the 1 files is a readable PNG or JPEG image"),
])
def test_bad_input_is_named_in_one_line(local_study, tmp_path, case, message):
    model, images = local_study / EXPERIMENT.format(arch="simple_cnn"), tmp_path / "images"
    images.mkdir()
    Image.new("L", (8, 8)).save(images / "ok.png")
    if case == "missing image":
        images = tmp_path / "nowhere"
    elif case == "empty folder":
        (images / "ok.png").unlink()
    elif case == "model folder without a model":
        model = tmp_path
    elif case == "not a model":
        model = images / "ok.png"
    elif case == "only bad files":
        (images / "ok.png").write_text("text")
    with pytest.raises(PredictError, match=message) as raised:
        predict(model, [images], tmp_path / "out.csv", skip_bad=True)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "out.csv").exists()


def test_cli_error_is_one_line_with_exit_status_2(tmp_path):
    result = subprocess.run([str(CONVBENCH), "predict", str(tmp_path), str(tmp_path)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"convbench predict: error: {tmp_path}: no model.keras in this "
                                                  "folder; give an experiment folder (results/experiments/<dataset>/"
                                                  "<arch>/<variant>/seed<N>) or a .keras file"]


def test_predict_target_best_only_then_every_experiment(local_study, test_pngs):
    config = [f"predict={{images: {test_pngs}, best_only: true}}"]
    run_snakemake(local_study, "--cores", "2", "predict", config=config)
    summary = pd.read_csv(local_study / "results/summary.csv")
    best = summary.sort_values("accuracy", ascending=False).iloc[0]
    written = sorted((local_study / "results/predictions").rglob("*.csv"))
    assert [path.relative_to(local_study / "results/predictions").as_posix() for path in written] == [
        f"digits/{best.architecture}/default/seed1.csv"]
    first = written[0].stat().st_mtime_ns
    frame = pd.read_csv(written[0])
    assert len(frame) == summary["test_images"].iloc[0] and list(frame.columns)[-2:] == ["class_3", "probability_3"]

    run_snakemake(local_study, "--cores", "2", "predict", config=[f"predict={{images: {test_pngs}}}"])
    written = sorted((local_study / "results/predictions").rglob("*.csv"))
    assert len(written) == len(summary) == 2
    assert (local_study / f"results/predictions/digits/{best.architecture}/default/seed1.csv").stat().st_mtime_ns == first
