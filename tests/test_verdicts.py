"""Verdicts you can defend: paired intervals over seeds and test images, leaders only beyond noise."""

import numpy as np
import pandas as pd
import pytest

from convbench.report import confidence, verdicts


def outcomes(accuracies, images=360, seed=0):
    """{seed index: right per image} with each seed's accuracy exactly as given."""
    rng = np.random.default_rng(seed)
    table = {}
    for s, accuracy in enumerate(accuracies, start=1):
        right = np.zeros(images, dtype=bool)
        right[rng.choice(images, round(accuracy * images), replace=False)] = True
        table[s] = right
    return table


def test_one_seed_interval_is_scipys_paired_bootstrap_over_test_images():
    """With one seed the two-level bootstrap is the ordinary paired bootstrap: scipy's is the oracle."""
    from scipy import stats

    a, b = outcomes([0.95], seed=1), outcomes([0.93], seed=2)
    diff = verdicts.Resampled({"a": a, "b": b}).difference("a", "b")
    per_image = a[1].astype(float) - b[1]
    oracle = stats.bootstrap((per_image,), np.mean, method="percentile", n_resamples=20000,
                             random_state=np.random.default_rng(5)).confidence_interval
    assert diff.mean == pytest.approx(per_image.mean())
    assert diff.low == pytest.approx(oracle.low, abs=0.003) and diff.high == pytest.approx(oracle.high, abs=0.003)
    assert diff.covers == "test images only (one seed)"


def test_seed_spread_widens_the_interval_beyond_test_sampling_alone():
    steady = {"a": outcomes([0.95, 0.95, 0.95], seed=1), "b": outcomes([0.93, 0.93, 0.93], seed=2)}
    shaky = {"a": outcomes([0.99, 0.95, 0.91], seed=1), "b": outcomes([0.93, 0.93, 0.93], seed=2)}
    calm, wild = verdicts.Resampled(steady).difference("a", "b"), verdicts.Resampled(shaky).difference("a", "b")
    assert wild.high - wild.low > 1.5 * (calm.high - calm.low)
    assert calm.covers == "seeds and test images"


def test_identical_networks_are_tied_everywhere():
    """A YAML copy of an architecture trains to the same predictions: never a leader, a flip or an effect."""
    same = outcomes([0.9, 0.91, 0.92])
    resampled = verdicts.Resampled({"simple_cnn": same, "simple_cnn_copy": dict(same)})
    diff = resampled.difference("simple_cnn", "simple_cnn_copy")
    assert (diff.mean, diff.low, diff.high) == (0.0, 0.0, 0.0) and diff.tied
    sentence = verdicts.lead_sentence("digits", resampled)
    assert "are tied for first within noise" in sentence and "leads" not in sentence
    table = confidence.standings_table(resampled)
    assert list(table["verdict"]) == ["leader", "tied with the leader"]
    assert table.iloc[1, 4:6].tolist() == ["+0.00 points", "[+0.00, +0.00]"]  # no "-0.00"


def test_a_leader_is_named_only_when_ahead_of_everyone_beyond_noise():
    clear = verdicts.Resampled({"bn_cnn": outcomes([0.99, 0.99, 0.99], seed=1),
                                "lenet5": outcomes([0.90, 0.90, 0.90], seed=2)})
    sentence = verdicts.lead_sentence("digits", clear)
    assert sentence.startswith("On **digits**, **bn_cnn** leads with a mean test accuracy of **98.89%**")
    assert "ahead of every other model beyond noise (next: lenet5, +8.9 points [" in sentence
    close = verdicts.Resampled({"lenet5": outcomes([0.9722, 0.9694, 0.9722], seed=1),
                                "simple_cnn": outcomes([0.9667, 0.9639, 0.9667], seed=2),
                                "mlp": outcomes([0.80, 0.80, 0.80], seed=3)})
    sentence = verdicts.lead_sentence("digits", close)
    assert "**lenet5** and **simple_cnn** are tied for first within noise (lenet5 − simple_cnn +0.6 points [" in sentence
    table = confidence.standings_table(close)
    assert list(table["verdict"]) == ["leader", "tied with the leader", "behind beyond noise"]


def test_models_are_ranked_on_the_seeds_all_of_them_ran():
    """A search's tuned recipe runs on the confirmation seeds only: the default's extra seed must not count."""
    default = {1: outcomes([0.5])[1], 11: outcomes([0.9])[1], 12: outcomes([0.9])[1]}
    tuned = {11: outcomes([0.92])[1], 12: outcomes([0.92])[1]}
    leader, ranked = verdicts.standings(verdicts.Resampled({"default": default, "tuned": tuned}))
    assert leader == "tuned" and ranked[1][2].seeds == (11, 12)


def test_pairwise_matrix_colours_ahead_behind_and_tied():
    resampled = verdicts.Resampled({"a": outcomes([0.99], seed=1), "b": outcomes([0.90], seed=2),
                                    "c": outcomes([0.90], seed=3)})
    cells, colors = confidence.pairwise_cells(resampled)
    assert colors.loc["a", "b"] == colors.loc["a", "c"] == confidence.AHEAD
    assert colors.loc["b", "a"] == confidence.BEHIND and colors.loc["b", "c"] == colors.loc["c", "b"] == confidence.TIED
    assert cells.loc["a", "b"].startswith("+8.9 points") and "[-" in cells.loc["b", "c"]
    assert "+8.9 points" in confidence.pairwise_matrix(resampled).to_html()


def test_correctness_pairs_only_predictions_on_the_same_test_images(tmp_path):
    rows = []
    for index, (model, labels) in enumerate([("a", [0, 1, 2, 1]), ("b", [0, 1, 2, 1]), ("c", [2, 1, 0, 1])]):
        folder = tmp_path / model
        folder.mkdir()
        probabilities = np.eye(3)[[0, 1, 1, 1]]
        np.savez(folder / "test_predictions.npz", labels=np.array(labels), probabilities=probabilities)
        rows.append({"dataset": "d", "model": model, "seed": 1, "experiment_dir": str(folder)})
    summary = pd.DataFrame(rows)
    right = verdicts.correctness(summary.iloc[:2], "d")
    assert right["a"][1].tolist() == [True, True, False, True]
    with pytest.raises(ValueError, match="tested on other images"):
        verdicts.correctness(summary, "d")


def test_accuracy_intervals_stay_within_0_and_1():
    resampled = verdicts.Resampled({"perfect": outcomes([1.0, 1.0]), "none": outcomes([0.0, 0.0])})
    assert resampled.accuracy_interval("perfect") == (1.0, 1.0) and resampled.accuracy_interval("none") == (0.0, 0.0)


def test_the_leaderboard_marks_every_model_tied_for_first():
    from convbench.report.tables import leaderboard, style_leaderboard

    resampled = verdicts.Resampled({"a": outcomes([0.95, 0.95], seed=1), "b": outcomes([0.945, 0.945], seed=2),
                                    "c": outcomes([0.80, 0.80], seed=3)})
    summary = pd.DataFrame([{"dataset": "d", "architecture": model, "variant": "default", "model": model, "seed": seed,
                             "accuracy": right.mean(), "parameters": 10, "loss": 0.3, "macro_f1": 0.8,
                             "expected_calibration_error": 0.02, "flops_per_image": 5, "latency_ms": 1.0,
                             "train_seconds": 3.0, "images_per_second": 100}
                            for model, seeds in resampled.right.items() for seed, right in seeds.items()])
    first = {"d": verdicts.first_place(summary, "d", resampled)}
    assert first == {"d": {("a", "default"), ("b", "default")}}
    import re

    html = style_leaderboard(leaderboard(summary), first=first).to_html()
    marked = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", html):
        if "#d4edda" in body:
            for row, column in re.findall(r"_row(\d+)_col(\d+)", selectors):
                marked.setdefault(int(column), set()).add(int(row))
    accuracy = list(leaderboard(summary).drop(columns="variant").columns).index("accuracy_mean")
    assert marked[accuracy] == {0, 1}  # a and b, tied for first; not c
