"""End to end: Snakemake runs a tiny study in a copy of the workflow; assert on what it produced."""

import re
import shutil

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from conftest import planned_jobs, run_snakemake
from convbench.base.atomic import read_json
from convbench.data.prepared import load_prepared
from convbench.evaluate.evaluation import load_model
from convbench.evaluate.visualization import find_conv_layer

pytestmark = pytest.mark.integration


def snakemake(workdir, *args, config=()):
    return run_snakemake(workdir, "--cores", "2", *args, config=config)


@pytest.fixture(scope="module")
def study(local_study):
    return local_study


def experiments(study):
    return sorted(study.glob("results/experiments/*/*/*/seed*"))


def test_one_experiment_per_architecture(study):
    summary = pd.read_csv(study / "results" / "summary.csv")
    assert sorted(summary["architecture"]) == ["bn_cnn", "simple_cnn"]
    assert summary[["accuracy", "macro_precision", "macro_recall", "macro_f1"]].apply(lambda col: col.between(0, 1)).all().all()
    assert (summary["epochs_run"] == 3).all()
    assert (summary[["latency_ms", "throughput_images_per_second", "flops_per_image", "model_bytes"]] > 0).all().all()
    assert summary["top5_accuracy"].isna().all()  # digits has 10 classes: top-5 is not reported
    assert len(experiments(study)) == 2


def job_events(workdir):
    """(event, jobid, rule) in the order the log of the study's first run records them: 'start' or 'end'
    (later logs are other tests' runs in the same folder)."""
    log = min((workdir / ".snakemake" / "log").glob("*.snakemake.log")).read_text()
    events = []
    for block in re.split(r"^\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]$", log, flags=re.M)[1:]:
        if finished := re.search(r"^Finished jobid: (\d+) \(Rule: (\w+)\)", block, flags=re.M):
            events.append(("end", finished[1], finished[2]))
        elif (started := re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):", block, flags=re.M)) and "jobid:" in block:
            events.append(("start", re.search(r"jobid: (\d+)", block)[1], started[1]))
    return events


def test_speed_is_measured_by_one_job_running_alone(study):
    events = job_events(study)
    starts = [index for index, (kind, _, rule) in enumerate(events) if kind == "start" and rule == "measure_cost"]
    assert len(starts) == 1  # one dataset
    start = starts[0]
    job = events[start][1]
    end = next(index for index, (kind, jobid, _) in enumerate(events) if kind == "end" and jobid == job)
    running = {jobid for kind, jobid, _ in events[:start] if kind == "start"} - {
        jobid for kind, jobid, _ in events[:start] if kind == "end"}
    assert not running, f"measure_cost started beside jobs {running}"
    assert all(kind == "end" or jobid == job for kind, jobid, _ in events[start + 1 : end]), events[start:end + 1]
    cost = pd.read_csv(study / "results/cost/digits.csv")
    assert sorted(cost["architecture"]) == ["bn_cnn", "simple_cnn"] and (cost["rounds"] == 5).all()
    summary = pd.read_csv(study / "results" / "summary.csv").merge(cost, on=["dataset", "architecture", "variant"])
    assert (summary["latency_ms_x"] == summary["latency_ms_y"]).all()
    assert summary["cost_measured_on"].str.startswith("CPU: ").all()


def test_report_shows_inside_the_networks(study):
    html = (study / "results" / "report.html").read_text()
    assert "Inside the networks" in html and html.count("receptive field") >= 2
    assert "key idea" in html and "batch normalization after every convolution" in html  # bn_cnn's row
    for experiment in experiments(study):
        by_hand = read_json(experiment / "anatomy.json")["first_conv"]
        tolerance = 1e-5 if by_hand["precision"] == "float32" else 0.05  # bfloat16 rounds at ~1e-2
        assert by_hand["max_abs_difference"] < tolerance, by_hand
        assert (experiment / "figures" / "by_hand.png").stat().st_size > 0


def test_each_training_job_wrote_its_tensorboard_logs(study):
    for experiment in experiments(study):
        logs = study / "results/tensorboard" / experiment.relative_to(study / "results/experiments")
        assert {path.parent.name for path in logs.rglob("events.out.tfevents.*")} == {"train", "validation"}


def test_metrics_equal_the_saved_models_own_evaluation(study):
    for experiment in experiments(study):
        metrics = read_json(experiment / "metrics.json")
        assert 0 <= metrics["accuracy"] <= 1 and metrics["loss"] >= 0
        model = load_model(experiment / "model.keras")
        spec = "x".join(map(str, model.input_shape[1:]))
        data = load_prepared(study / f"results/prepared/digits/{spec}", study / f"results/prepared/digits/{spec}.json")
        x_test, y_test = data.scaled("test")
        loss, accuracy = model.evaluate(x_test, np.eye(10)[y_test], verbose=0)
        assert metrics["accuracy"] == pytest.approx(accuracy, abs=1e-6)
        assert metrics["loss"] == pytest.approx(loss, rel=1e-4)
        assert np.sum(metrics["confusion_matrix"]) == len(y_test)


def test_figures_decode_with_the_expected_tiles(study):
    for experiment in experiments(study):
        figures = read_json(experiment / "figures" / "figures.json")
        for name in ("curves", "confusion", "filters", "feature_maps", "gradcam", "misclassified"):
            image = matplotlib.image.imread(experiment / "figures" / f"{name}.png")
            assert image.shape[0] > 100 and image.shape[1] > 100
        model = load_model(experiment / "model.keras")
        assert figures["filters"]["tiles"] == min(64, find_conv_layer(model).filters)
        assert figures["feature_maps"]["grid"][0] == 2 * len(figures["feature_maps"]["layers"])  # images x blocks


def test_report_has_a_row_per_experiment_and_needs_no_network(study):
    html = (study / "results" / "report.html").read_text()
    table = html.split('class="experiments"', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r"<tr>", table)) == 1 + 2  # header + one row per experiment
    assert "bn_cnn" in table and "simple_cnn" in table
    assert not re.search(r"""(src|href)=["']https?://""", html), "report.html loads something from the network"
    assert html.count("data:image/png;base64") >= 2 * 6
    # one variant and no augmentation: no variants section, no preview (nor its job)
    assert "Variants: what each change did" not in html and not (study / "results/figures").exists()
    assert "No augmentation is configured in this study" in html
    notebook = (study / "results" / "report" / "report.ipynb").read_text()
    assert '"output_type": "error"' not in notebook


def test_report_renders_offline_in_a_real_browser(study, tmp_path):
    from browser import CHROMIUM, browser_required, inspect_offline

    if not CHROMIUM:
        if browser_required():
            pytest.fail("Chromium is required here (CONVBENCH_REQUIRE_BROWSER) but not installed")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    seen = inspect_offline(study / "results" / "report.html", tmp_path / "report.png")
    assert seen["blocked"] == [], "the report asked the network for these"
    assert seen["console_errors"] == [] and seen["page_errors"] == []
    assert len(seen["images"]) >= 2 * 6 and all(image["ok"] for image in seen["images"]), "broken images"
    assert matplotlib.image.imread(tmp_path / "report.png").shape[:2] == (900, 1280)
    assert seen["page_width"] == 1280 and seen["leaderboard_hidden_px"] <= 0, "the leaderboard needs horizontal scrolling"
    assert seen["architectures_sorted"] == sorted(seen["architectures_before"])
    assert seen["details_opened"] is True  # the folded galleries open


def test_snakemake_report_holds_the_tagged_figures(study):
    snakemake(study, "--report", "results/snakemake-report.html")
    html = (study / "results" / "snakemake-report.html").read_text()
    for category in ("Training curves", "Learned filters", "Grad-CAM"):
        assert category in html


def test_rerun_is_a_no_op(study):
    assert "Nothing to be done" in snakemake(study, "--dry-run")


def test_the_evaluate_jobs_adopt_what_the_training_jobs_evaluated(study):
    for experiment in experiments(study):
        log = study / "results/logs/evaluate" / f"{experiment.relative_to(study / 'results/experiments')}.log"
        assert "adopted the evaluation the training job made" in log.read_text()
        assert "tensorflow" not in log.read_text().lower()  # it never started TensorFlow
        assert not (experiment / ".staged-evaluation").exists()


def test_a_figure_setting_reevaluates_in_full_without_retraining_and_the_same_metrics(study, tmp_path):
    work = tmp_path / "study"  # a copy: the study's own settings stay for the tests after this one
    shutil.copytree(study, work, symlinks=True)
    before = {experiment: (read_json(experiment / "metrics.json"), np.load(experiment / "test_predictions.npz"))
              for experiment in experiments(work)}
    changed = ["render={max_filters: 16}"]
    assert planned_jobs(snakemake(work, "--dry-run", config=changed)) == {
        "evaluate_model": 2, "summarize": 1, "build_report": 1, "all": 1}
    snakemake(work, config=changed)
    for experiment, (metrics, predictions) in before.items():
        log = work / "results/logs/evaluate" / f"{experiment.relative_to(work / 'results/experiments')}.log"
        assert "no staged evaluation: evaluating in full" in log.read_text()
        assert read_json(experiment / "metrics.json") == metrics
        np.testing.assert_array_equal(np.load(experiment / "test_predictions.npz")["probabilities"],
                                      predictions["probabilities"])
        assert read_json(experiment / "figures" / "figures.json")["filters"]["tiles"] <= 16


def test_changing_the_template_reruns_only_the_report(study):
    template = study / "workflow" / "notebooks" / "report.ipynb"
    template.write_text(template.read_text().replace("architecture comparison", "architecture comparison (v2)"))
    assert planned_jobs(snakemake(study, "--dry-run")) == {"build_report": 1, "all": 1}


def test_adding_a_seed_reruns_only_its_experiments_and_the_report(study):
    jobs = planned_jobs(snakemake(study, "--dry-run", config=["seeds=[1, 2]"]))
    assert jobs == {"train_model": 2, "evaluate_model": 2, "summarize": 1, "build_report": 1,
                    "all": 1}


def test_no_empty_checkpoint_folders_remain(study):
    assert not (study / "results" / "checkpoints").exists()  # every job finished: nothing to resume


def test_deleted_result_files_are_made_again(study):
    """Intermediate files are targets too: Snakemake would otherwise remake them only for a job that reruns."""
    experiment = experiments(study)[0]  # both kinds of file from one experiment: one evaluation remakes them
    (experiment / "metrics.json").unlink()
    (experiment / "figures" / "figures.json").unlink()
    assert planned_jobs(snakemake(study, "--dry-run")) == {"evaluate_model": 1, "summarize": 1, "build_report": 1,
                                                           "all": 1}
    snakemake(study)
    assert (experiment / "metrics.json").exists() and (experiment / "figures" / "figures.json").exists()


def test_the_wall_time_table_lists_only_the_studys_jobs(study):
    stale = study / "results/benchmarks/train/digits/removed_arch/default/seed1.tsv"
    stale.parent.mkdir(parents=True)
    stale.write_text((study / "results/benchmarks/train/digits/simple_cnn/default/seed1.tsv").read_text())
    snakemake(study, "--forcerun", "build_report")
    html = (study / "results" / "report.html").read_text()
    assert "removed_arch" not in html
    for job in ("digits/simple_cnn/default/seed1", "digits/bn_cnn/default/seed1", "digits/28x28x1", "summarize"):
        assert f">{job}<" in html


def test_a_damaged_model_is_named_in_one_line_and_retrained_by_the_next_run(study):
    experiment = study / "results/experiments/digits/simple_cnn/default/seed1"
    model = experiment / "model.keras"
    weights = load_model(model).get_weights()
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # e.g. a copy cut short
    (experiment / "metrics.json").unlink()  # a job that reads the model
    output = run_snakemake(study, "--cores", "2", check=False)
    assert "Traceback" not in output
    failed = output[output.index("convbench: 1 job(s) failed:"):].splitlines()
    assert failed[0] == "convbench: 1 job(s) failed:" and re.match(
        rf"  (evaluate_model|measure_cost) \S+: {model.relative_to(study)} is damaged: its SHA-256 differs from "
        r"the one its training job recorded in train_meta.json. Moved to model.keras.damaged; run snakemake "
        r"again to retrain it", failed[1])
    assert not model.exists() and (experiment / "model.keras.damaged").exists()
    jobs = planned_jobs(snakemake(study, "--dry-run"))
    assert jobs["train_model"] == 1 and jobs["evaluate_model"] == 1
    snakemake(study)
    retrained = load_model(model).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(weights, retrained))  # deterministic: the same model again


# ---------------------------------------------------------------- variants

VARIANTS = ["architectures=[simple_cnn]", "training={epochs: 1}", "seeds=[1, 2]",
            "variants={default: {}, rotated: {augmentation: {rotation_range: 10}}}"]


@pytest.fixture(scope="module")
def variant_study(tmp_path_factory):
    from conftest import copy_workflow

    workdir = copy_workflow(tmp_path_factory.mktemp("variants"))
    snakemake(workdir, config=VARIANTS)
    return workdir


def test_each_variant_has_its_experiments_rows_and_report_section(variant_study):
    runs = variant_study / "results/experiments/digits/simple_cnn"
    assert sorted(path.name for path in runs.iterdir()) == ["default", "rotated"]
    summary = pd.read_csv(variant_study / "results/summary.csv", keep_default_na=False)
    assert list(zip(summary["variant"], summary["seed"])) == [("default", 1), ("default", 2), ("rotated", 1), ("rotated", 2)]
    assert set(summary["variant_changes"]) == {"", "augmentation.rotation_range=10"}
    assert list(summary["setting.augmentation.rotation_range"]) == [0, 0, 10, 10]
    meta = read_json(runs / "rotated/seed2/train_meta.json")
    assert meta["variant"] == "rotated" and meta["variant_overrides"] == {"augmentation": {"rotation_range": 10}}
    assert meta["settings"]["augmentation"]["rotation_range"] == 10 and meta["settings"]["epochs"] == 1
    assert meta["config_hash"] != read_json(runs / "default/seed2/train_meta.json")["config_hash"]
    html = (variant_study / "results/report.html").read_text()
    assert "Variants: what each change did" in html and "simple_cnn · rotated" in html
    assert "each variant against the baseline, <strong>default</strong>" in html and "default (baseline)" in html
    assert (variant_study / "results/figures/digits/rotated/augmentation_preview.png").exists()
    assert not (variant_study / "results/figures/digits/default").exists()  # no augmentation, no preview


def test_adding_a_variant_schedules_only_its_experiments(variant_study):
    added = VARIANTS[:-1] + ["variants={default: {}, rotated: {augmentation: {rotation_range: 10}}, "
                             "slow: {learning_rate: 0.0001}}"]
    jobs = planned_jobs(snakemake(variant_study, "--dry-run", config=added))
    assert jobs == {"train_model": 2, "evaluate_model": 2, "measure_cost": 1, "summarize": 1, "build_report": 1,
                    "all": 1}  # the dataset's speed is measured again, with the new models among the others


def test_changing_one_variant_reruns_only_that_variant(variant_study):
    changed = VARIANTS[:-1] + ["variants={default: {}, rotated: {augmentation: {rotation_range: 20}}}"]
    output = snakemake(variant_study, "--dry-run", config=changed)
    assert planned_jobs(output) == {"train_model": 2, "evaluate_model": 2, "measure_cost": 1,
                                    "preview_augmentation": 1, "summarize": 1, "build_report": 1, "all": 1}
    assert "simple_cnn/default/" not in output.split("Job stats:")[0]


def test_removing_a_variant_trains_nothing(variant_study):
    """Only the tables change: the summary, the report, and the speed table of the dataset (the models
    it compares changed; they are measured again side by side, in seconds)."""
    removed = VARIANTS[:-1] + ["variants={default: {}}"]
    assert planned_jobs(snakemake(variant_study, "--dry-run", config=removed)) == {
        "measure_cost": 1, "summarize": 1, "build_report": 1, "all": 1}


def test_snakemake_report_tags_the_augmentation_preview(variant_study):
    snakemake(variant_study, "--report", "results/snakemake-report.html", config=VARIANTS)
    assert "Augmentation preview" in (variant_study / "results/snakemake-report.html").read_text()


def test_an_application_at_a_raised_input_size_runs_the_whole_chain(tmp_path):
    """mobilenetv2 fed 48 px from data prepared at 32 px: resized per batch, never stored at 48."""
    from conftest import copy_workflow

    workdir = copy_workflow(tmp_path)
    config = ["architectures=[mobilenetv2]", "architecture_options={mobilenetv2: {input_size: 48}}",
              "training={epochs: 1}", "references={mobilenetv2: {digits: {accuracy: 0.99, source: 'nobody, 2026'}}}"]
    run_snakemake(workdir, "--cores", "2", config=config)
    experiment = workdir / "results/experiments/digits/mobilenetv2/default/seed1"
    meta = read_json(experiment / "train_meta.json")
    assert meta["input_shape"] == [48, 48, 3] and meta["data"]["input_shape"] == [32, 32, 3]
    assert sorted(path.name for path in (workdir / "results/prepared/digits").iterdir()) == ["32x32x3", "32x32x3.json"]
    assert load_model(experiment / "model.keras").input_shape == (None, 48, 48, 3)
    figures = read_json(experiment / "figures/figures.json")
    assert figures["gradcam"]["layer"]  # drawn at a layer with space: at 48 px the last maps are 2x2
    assert "48x48x3" in pd.read_csv(workdir / "results/summary.csv")["input_shape"].iloc[0]
    html = (workdir / "results/report.html").read_text()
    assert "published accuracy" in html and "nobody, 2026" in html


def test_prepared_data_can_live_on_a_shared_file_system(tmp_path):
    """storage.prepared_dir: where the shards go, and where every job that reads them looks."""
    from conftest import copy_workflow

    (tmp_path / "work").mkdir()
    workdir = copy_workflow(tmp_path / "work")
    shared = tmp_path / "scratch" / "prepared"
    plan = run_snakemake(workdir, "--dry-run", "--cores", "2", config=[f"storage={{prepared_dir: {shared}/}}"])
    # the rules name it results/prepared, a link to prepared_dir: moving that folder changes no job's inputs
    assert "output: results/prepared/digits/28x28x1, results/prepared/digits/28x28x1.json" in plan
    assert re.search(r"rule train_model:\n    input: results/prepared/digits/28x28x1, results/prepared/digits/28x28x1.json",
                     plan)
    assert (workdir / "results" / "prepared").resolve() == shared and shared.is_dir()
