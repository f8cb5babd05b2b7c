"""Report helpers: leaderboard, Pareto front, provenance (statistics: test_verdicts.py)."""

import numpy as np
import pandas as pd
import pytest
from conftest import write_arrays
from convbench.report.provenance import provenance
from convbench.report.tables import leaderboard
from convbench.report.tradeoffs import pareto_front


def study_summary(seeds, gap=0.05):
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        for architecture, base in (("big", 0.9), ("small", 0.9 - gap)):
            rows.append({"dataset": "d", "architecture": architecture, "seed": seed,
                         "accuracy": base + rng.normal(0, 0.005), "loss": 0.3, "macro_f1": 0.8,
                         "expected_calibration_error": 0.02, "parameters": 1000 if architecture == "big" else 10,
                         "flops_per_image": 5, "latency_ms": 1.0, "train_seconds": 3.0, "images_per_second": 100})
    return pd.DataFrame(rows)


def test_leaderboard_is_mean_and_std_over_seeds_sorted_by_accuracy():
    summary = study_summary(3)
    board = leaderboard(summary)
    assert list(board["architecture"]) == ["big", "small"]
    big = summary[summary["architecture"] == "big"]["accuracy"]
    assert board.loc[0, "accuracy_mean"] == pytest.approx(big.mean())
    assert board.loc[0, "accuracy_std"] == pytest.approx(big.std())
    assert board.loc[0, "seeds"] == 3


def test_published_accuracy_and_gap_stand_next_to_the_measured_one():
    from convbench.report.tables import style_leaderboard, with_references

    board = leaderboard(study_summary(3))
    assert with_references(board, {}) is board  # no references: the leaderboard as it was
    references = {"big": {"d": {"accuracy": 0.92, "source": "Doe et al. 2020, Table 1"}}}
    shown = with_references(board, references)
    big, small = shown.iloc[0], shown.iloc[1]
    position = list(shown.columns).index("accuracy_mean")
    assert list(shown.columns[position:position + 5]) == ["accuracy_mean", "accuracy_std", "published_accuracy", "gap",
                                                          "published_source"]
    assert big["published_accuracy"] == 0.92 and big["gap"] == pytest.approx(100 * (big["accuracy_mean"] - 0.92))
    assert pd.isna(small["published_accuracy"]) and pd.isna(small["gap"])
    html = style_leaderboard(shown).to_html()
    assert "published accuracy" in html and "92.00%" in html and "Doe et al. 2020, Table 1" in html


def test_pareto_front_keeps_only_undominated_points():
    cost = np.array([1, 2, 3, 4, 5])
    accuracy = np.array([0.5, 0.4, 0.7, 0.6, 0.9])
    assert pareto_front(cost, accuracy) == [0, 2, 4]


def test_provenance_names_code_packages_and_machine():
    facts = provenance()
    assert {"git commit", "report built", "tensorflow", "keras", "python"} <= set(facts)


def test_a_metric_added_to_the_table_reaches_summary_and_report(tmp_path):
    """Adding a metric is one entry in convbench.evaluate.metrics: summary.csv, the leaderboard and the
    table of all experiments pick it up."""
    from convbench.base.atomic import write_json
    from convbench.evaluate.metrics import METRICS, Metric
    from convbench.report.summary import write_summary
    from convbench.report.tables import experiments_table, load_summary, style_leaderboard

    error_rate = Metric("error_rate", "test error (%)", lambda metrics, meta, cost: 100 * (1 - metrics["accuracy"]),
                        "{:.2f}", higher_is_better=False, aggregate="mean")
    table = (*METRICS, error_rate)
    metric_paths, meta_paths = [], []
    for seed, accuracy in ((1, 0.9), (2, 0.8)):
        folder = tmp_path / f"seed{seed}"
        metrics = {"accuracy": accuracy, "loss": 0.3, "top5_accuracy": None, "expected_calibration_error": 0.02,
                   "per_class": {"macro avg": {"precision": 0.9, "recall": 0.9, "f1-score": 0.9}},
                   "test_images": 10, "flops_per_image": 5, "model_bytes": 9}
        meta = {"dataset": "d", "architecture": "a", "variant": "default", "seed": seed, "variant_overrides": {},
                "settings": {}, "parameters": 3, "epochs_run": 2, "best_epoch": 2, "train_seconds": 1.0,
                "images_per_second": 10.0, "input_shape": [8, 8, 1], "config_hash": "h", "threads": 2,
                "precision": "float32", "environment": {"gpus": [], "processor": "cpu", "cpu_count": 2,
                                                         "tensorflow": "2", "keras": "3"}}
        write_json(folder / "metrics.json", metrics)
        write_json(folder / "train_meta.json", meta)
        metric_paths.append(folder / "metrics.json")
        meta_paths.append(folder / "train_meta.json")
    cost = tmp_path / "cost.csv"
    pd.DataFrame([{"dataset": "d", "architecture": "a", "variant": "default", "latency_ms": 1.0,
                   "throughput_images_per_second": 100.0, "measured_on": "CPU: test, 2 threads"}]).to_csv(cost, index=False)
    write_summary(metric_paths, meta_paths, [None, None], [cost], tmp_path / "summary.csv", metrics_table=table)
    summary = load_summary(tmp_path / "summary.csv")
    assert list(summary["error_rate"]) == pytest.approx([10.0, 20.0])
    assert list(summary["latency_ms"]) == [1.0, 1.0]  # both seeds: the architecture's measured speed
    assert set(summary["cost_measured_on"]) == {"CPU: test, 2 threads"}
    board = leaderboard(summary, metrics_table=table)
    assert board.loc[0, "error_rate"] == pytest.approx(15.0)
    assert "test error (%) (mean)" in style_leaderboard(board, metrics_table=table).to_html()
    assert "test error (%)" in experiments_table(summary, metrics_table=table).to_html()


def test_first_screen_leaderboard_folds_mean_and_std_and_keeps_wide_columns_for_the_full_one():
    from convbench.report.tables import style_leaderboard

    board = leaderboard(study_summary(3))
    first = style_leaderboard(board, full=False).to_html()
    full = style_leaderboard(board).to_html()
    big = board.iloc[0]
    assert f"{big['accuracy_mean']:.2%}\u00a0±\u00a0{big['accuracy_std']:.2%}" in first  # percent, as everywhere
    assert "test accuracy (mean ± std)" in first and "(std)<" not in first
    assert "calibration error" not in first and "FLOPs" not in first and "training speed" not in first
    assert "calibration error" in full and "FLOPs" in full
    assert f">{big['accuracy_mean']:.2%}<" not in first  # the mean is not shown twice


def test_large_counts_read_in_si_units():
    from convbench.evaluate.metrics import si

    assert [si(v) for v in (950, 950_000, 10e6, 123.4e6, 4.1e9)] == ["950", "950 k", "10 M", "123 M", "4.1 G"]


def test_hardest_images_are_the_ones_most_models_get_wrong():
    from convbench.report.galleries import hardest_images

    labels = np.array([0, 1, 0, 1])
    confident = lambda classes: np.eye(2)[classes] * 0.8 + 0.1  # noqa: E731
    predictions = {"a": confident([1, 1, 0, 1]), "b": confident([1, 0, 0, 1]), "c": confident([0, 1, 0, 1])}
    # image 0: two models wrong; image 1: one; images 2 and 3: none
    assert list(hardest_images(predictions, labels, count=2)) == [0, 1]
    # a model that always answers class 1 is wrong on images 0 and 2 and must not make image 2 look hard
    constant = confident([1, 1, 1, 1])
    assert list(hardest_images({**predictions, "d": constant, "e": constant}, labels, count=2)) == [0, 1]
    assert list(hardest_images({"d": constant}, labels, count=2)) == [0, 2]  # no model learned: all vote


def test_labels_of_a_crowded_plot_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from convbench.report.tradeoffs import place_labels

    rng = np.random.default_rng(1)
    xs, ys = 0.5 + 0.4 * rng.uniform(-0.5, 0.5, (2, 12))  # a clump: labels at one fixed offset overlap here
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(xs, ys)
    ax.set(xlim=(-0.2, 1.2), ylim=(-0.2, 1.2))
    fig.canvas.draw()
    place_labels(ax, xs, ys, [str(number) for number in range(1, 13)])
    boxes = [text.get_window_extent() for text in ax.texts]
    assert len(boxes) == 12
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)


def test_many_models_get_small_multiples_not_a_crowded_legend():
    from convbench.report.curves import curve_figures
    from convbench.report.page import OVERLAY_LIMIT

    def histories(models):
        return pd.DataFrame([{"dataset": "d", "model": f"m{m}", "seed": seed, "epoch": epoch, "accuracy": 0.5,
                              "val_accuracy": 0.5, "loss": 1.0, "val_loss": 1.0}
                             for m in range(models) for seed in (1, 2) for epoch in (1, 2, 3)])

    few, many = curve_figures(histories(OVERLAY_LIMIT), "d"), curve_figures(histories(OVERLAY_LIMIT + 6), "d")
    assert len(few) == 1 and len(few[0][0].axes) == 2
    assert [alt.split(" per epoch")[0] for _, alt in many] == ["Validation and training accuracy",
                                                                "Validation and training loss"]
    assert sum(ax.get_visible() for ax in many[0][0].axes) == OVERLAY_LIMIT + 6


def test_the_overlay_legend_says_what_solid_and_dotted_mean():
    from convbench.report.curves import plot_curves_overlay

    histories = pd.DataFrame([{"dataset": "d", "model": model, "seed": 1, "epoch": epoch, "accuracy": 0.5,
                               "val_accuracy": 0.5, "loss": 1.0, "val_loss": 1.0}
                              for model in ("a", "b") for epoch in (1, 2)])
    legend = plot_curves_overlay(histories, "d").legends[0]
    texts = [text.get_text() for text in legend.get_texts()]
    assert texts[:2] == ["a", "b"] and texts[2].startswith("validation") and texts[3] == "training"
    assert [line.get_linestyle() for line in legend.get_lines()[2:]] == ["-", ":"]


def test_accuracies_read_as_percentages_everywhere():
    from convbench.evaluate.metrics import METRICS

    for metric in METRICS:
        if "accuracy" in metric.name:
            assert metric.format.format(0.987654) == "98.77%", metric.name


def test_variant_and_sweep_plots_wrap_a_dozen_architectures_into_rows():
    from convbench.report.page import PANEL_COLUMNS
    from convbench.report.summary import SETTING_PREFIX
    from convbench.report.variant_plots import plot_sweep, plot_variant_accuracy

    rates = [0.001, 0.003]
    rows = [{"dataset": "d", "architecture": f"arch{a:02d}", "variant": f"learning_rate={rate},batch_size={batch}",
             "seed": seed, "accuracy": 0.9 - a / 100, SETTING_PREFIX + "learning_rate": rate,
             SETTING_PREFIX + "batch_size": batch}
            for a in range(12) for rate in rates for batch in (32, 64) for seed in (1, 2)]
    summary = pd.DataFrame(rows)
    summary["variant"] = pd.Categorical(summary["variant"], categories=list(dict.fromkeys(summary["variant"])))
    variants = list(summary["variant"].cat.categories)
    for fig in (plot_variant_accuracy(summary, "d"),
                plot_sweep(summary, "d", ["learning_rate", "batch_size"], variants)):
        panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
        assert len(panels) == 12
        width, height = fig.get_size_inches()
        assert width <= 4.5 * PANEL_COLUMNS and height > width / 2  # rows of panels, not one 12-wide strip


def test_same_image_comparisons_on_colour_images_with_long_class_names(tmp_path):
    """CIFAR-100-like data: RGB test images, class names longer than a cell; one row per model."""
    from convbench.base.atomic import write_json
    from convbench.report.galleries import (
        dataset_test_images,
        plot_gradcam_side_by_side,
        plot_hardest_images,
        shortened,
    )
    from convbench.report.tables import load_summary

    rng = np.random.default_rng(0)
    names = [f"aquarium_fish_{i}" for i in range(5)]
    labels = np.arange(40) % 5
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    write_arrays(tmp_path / "d", {f"{kind}_{split}": (images if kind == "x" else labels)
                                  for kind in ("x", "y") for split in ("train", "val", "test")}, class_names=names, dataset="d")
    rows = []
    for model in ("a", "b", "c"):
        folder = tmp_path / model
        probabilities = rng.dirichlet(np.ones(5), 40)
        folder.mkdir()
        np.savez(folder / "test_predictions.npz", labels=labels, probabilities=probabilities)
        write_json(folder / "figures" / "figures.json", {"gradcam": {
            "heat": rng.random((6, 4, 4)).round(2).tolist(), "predicted": probabilities[:6].argmax(1).tolist()}})
        rows.append({"dataset": "d", "architecture": model, "variant": "default", "seed": 1,
                     "variant_changes": "", "accuracy": float((probabilities.argmax(1) == labels).mean()),
                     "experiment_dir": str(folder)})
    pd.DataFrame(rows).to_csv(tmp_path / "summary.csv", index=False)
    summary = load_summary(tmp_path / "summary.csv")
    test_images = dataset_test_images([str(tmp_path / "d.json")], "d")
    hardest = plot_hardest_images(summary, "d", test_images, count=8)
    cells = [text.get_text() for text in hardest.axes[1].texts]
    assert len(cells) == 3 * 8 and all(text.startswith(shortened(names[0])[:-1]) for text in cells)
    assert shortened("aquarium_fish_1") == "aquarium_…"
    looks = plot_gradcam_side_by_side(summary, "d", test_images)
    assert len([ax for ax in looks.axes if ax.images]) == 3 * 6  # a row per model, the same six images


def test_identifiers_that_look_like_numbers_are_read_back_as_written(tmp_path):
    """CI found it: a config hash of hex digits only ("120534e81197" reads as 1.2e86) came back a float, and
    the report's provenance cell failed joining it. Every text column summary_row writes is declared text."""
    from convbench.base.atomic import write_json
    from convbench.report.summary import TEXT_COLUMNS, write_summary
    from convbench.report.tables import load_summary

    folder = tmp_path / "run"
    write_json(folder / "metrics.json", {"accuracy": 0.5, "loss": 1.0, "top5_accuracy": None,
                                         "expected_calibration_error": 0.1, "test_images": 4,
                                         "per_class": {"macro avg": {"precision": 1, "recall": 1, "f1-score": 1}},
                                         "flops_per_image": 5, "model_bytes": 9})
    write_json(folder / "train_meta.json", {
        "dataset": "2012", "architecture": "1e3", "variant": "2", "seed": 1, "variant_overrides": {},
        "settings": {}, "parameters": 3, "epochs_run": 1, "best_epoch": 1, "train_seconds": 1.0,
        "images_per_second": 1.0, "input_shape": [8, 8, 1], "config_hash": "120534e81197", "threads": 2,
        "precision": "float32", "environment": {"gpus": [], "processor": "0", "cpu_count": 2, "tensorflow": "2.21",
                                               "keras": "3", "lock_sha256": "0123456789"}})
    write_summary([folder / "metrics.json"], [folder / "train_meta.json"], [None], [], tmp_path / "summary.csv")
    written = pd.read_csv(tmp_path / "summary.csv", dtype=str, keep_default_na=False).iloc[0]
    text = [column for column, value in written.items() if value and not _is_number(value)]
    assert set(text) <= set(TEXT_COLUMNS), "a text column summary.csv holds is not declared in TEXT_COLUMNS"
    row = load_summary(tmp_path / "summary.csv").iloc[0]
    assert (row["dataset"], row["architecture"], row["variant"]) == ("2012", "1e3", "2")
    assert (row["config_hash"], row["tensorflow"], row["lock_sha256"]) == ("120534e81197", "2.21", "0123456789")
    assert row["model"] == "1e3" and row["seed"] == 1


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_a_model_without_a_latency_measurement_reads_not_measured_not_nan():
    """The tuned variant's first line read 'nan ms per image'."""
    from convbench.report.tables import leader_facts

    summary = pd.DataFrame({"dataset": ["d", "d"], "model": ["a · tuned", "a · default"], "parameters": [225034, 225034],
                            "latency_ms": [float("nan"), 0.25]})
    assert leader_facts(summary, "d", "a · tuned") == "225,034 parameters, latency not measured"
    assert leader_facts(summary, "d", "a · default") == "225,034 parameters, 0.25 ms per image"


def test_the_leaderboard_ranks_every_model_on_the_seeds_all_of_them_ran(tmp_path):
    """A search's tuned recipe ran seeds 11 and 12, its default 1, 11 and 12: seed 1 must not enter the mean."""
    from convbench.report.tables import load_summary, shared_seed_note

    summary = study_summary(3).assign(variant="default")
    summary.loc[summary["seed"] == 0, "accuracy"] = 0.1  # a bad seed only "big" and "small" ran
    tuned = study_summary(3).query("seed > 0 and architecture == 'big'").assign(variant="tuned", accuracy=0.95)
    both = pd.concat([summary, tuned], ignore_index=True)
    board = leaderboard(both)
    assert set(board["seeds"]) == {2} and board["accuracy_mean"].min() > 0.5
    path = tmp_path / "summary.csv"
    both.assign(variant_changes="", config_hash="x").to_csv(path, index=False)
    note = shared_seed_note(load_summary(path))
    assert note.startswith("On **d** every model is ranked on seeds 1, 2") and "big · default seed 0" in note
