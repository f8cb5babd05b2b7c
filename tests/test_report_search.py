"""The report's Tuned comparison section: confirmation paired by seed, both rankings, and a search plot
that stays readable with many trials."""

import numpy as np
import pandas as pd
import pytest
from convbench.report import search
from convbench.tune.search import Plan, step_trials

SPACE = {"learning_rate": {"log_uniform": [1e-4, 1e-2]}, "batch_size": {"choice": [32, 64, 128]},
         "label_smoothing": {"uniform": [0.0, 0.2]}}


def record(arch, trials=64, halving=True):
    """A finished search's record with made-up scores (the plot and tables only read the record)."""
    plan = Plan.from_config({"method": "random", "trials": trials, "batch": 4, "seed": 1, "space": SPACE,
                             "halving": {"min_epochs": 1, "eta": 4} if halving else None}, epochs=16)
    done = []
    for step in range(plan.step_count()):
        new = step_trials(plan, step, done)
        done += [{**trial, "variant": f"trial{trial['trial']:03d}-r{trial['rung']}",
                  "score": round(0.6 + 0.02 * trial["rung"] + 0.3 * (trial["settings"]["learning_rate"] ** 0.1), 4)}
                 for trial in new]
    best = max((trial for trial in done if trial["rung"] == plan.rungs[-1].index), key=lambda trial: trial["score"])
    return {"dataset": "digits", "architecture": arch, "plan": plan.describe(), "baseline": "default",
            "confirmed_as": "tuned", "epochs_spent": 0, "trials": done,
            "chosen": {"trial": best["trial"], "settings": best["settings"], "validation_accuracy": best["score"],
                       "variant": best["variant"]}}


def confirmed(accuracy, images=2000):
    """(summary rows, Resampled) for {(arch, variant): [accuracy per confirmation seed]}: each seed's test
    images right with that chance, one shared draw per seed so that equal accuracies give equal predictions."""
    from convbench.report.verdicts import Resampled

    rng = np.random.default_rng(0)
    draws = {101 + index: rng.random(images) for index in range(3)}
    rows, right = [], {}
    for (arch, variant), values in accuracy.items():
        for index, value in enumerate(values):
            seed = 101 + index
            right.setdefault(f"{arch} · {variant}", {})[seed] = draws[seed] < value
            rows.append({"dataset": "digits", "architecture": arch, "variant": variant, "seed": seed,
                         "model": f"{arch} · {variant}"})
    frame = pd.DataFrame(rows)
    frame["variant"] = pd.Categorical(frame["variant"], categories=["default", "tuned"])
    return frame, Resampled(right)


def test_confirmation_pairs_by_seed_and_image_and_ranks_both_ways():
    frame, resampled = confirmed({("a", "default"): [0.90, 0.92, 0.94], ("a", "tuned"): [0.91, 0.93, 0.95],
                                  ("b", "default"): [0.97, 0.97, 0.98], ("b", "tuned"): [0.85, 0.86, 0.85]})
    table = search.confirmation(frame, [record("a", 8), record("b", 8)], "digits", resampled, [101, 102, 103])
    a, b = (table.set_index("architecture").loc[name] for name in ("a", "b"))
    assert a["difference"] == pytest.approx(0.01, abs=0.004) and a["ci_low"] > 0  # the same images, each a bit better
    assert b["difference"] < -0.1 and b["ci_high"] < 0 and b["verdict"] == "worse beyond noise"
    assert (a["rank untuned"], a["rank tuned"], b["rank untuned"], b["rank tuned"]) == (2, 1, 1, 2)
    pairs = search.order_pairs(table, resampled, [101, 102, 103])
    assert search.order_verdict(pairs).startswith("**Tuning changed the order beyond noise**: a now ahead of b")
    html = search.style_confirmation(table).to_html()
    assert "better beyond noise" in html and "[-" in html
    shown = search.style_order_pairs(pairs).to_html()
    assert "yes" in shown and "b ahead" in shown and "a ahead" in shown  # default: b first; tuned: a


def test_a_flip_within_noise_is_no_change_of_order():
    """lenet5 97.1 % against simple_cnn 96.6 % on 360 images, the shipped study's 'flip': tied both ways."""
    frame, resampled = confirmed({("simple_cnn", "default"): [0.972, 0.969, 0.972],
                                  ("simple_cnn", "tuned"): [0.966, 0.964, 0.967],
                                  ("lenet5", "default"): [0.966, 0.967, 0.964],
                                  ("lenet5", "tuned"): [0.972, 0.970, 0.971]}, images=360)
    table = search.confirmation(frame, [record("simple_cnn", 8), record("lenet5", 8)], "digits", resampled,
                                [101, 102, 103])
    assert list(table["rank tuned"]) != list(table["rank untuned"])  # the means did swap
    pairs = search.order_pairs(table, resampled, [101, 102, 103])
    assert search.order_verdict(pairs) == "The order did not change beyond noise (every pair's intervals below)."


def test_the_same_network_twice_never_flips():
    same = [0.95, 0.96, 0.94]
    frame, resampled = confirmed({("simple_cnn", "default"): same, ("simple_cnn", "tuned"): [0.97, 0.97, 0.97],
                                  ("simple_cnn_copy", "default"): same, ("simple_cnn_copy", "tuned"): [0.97, 0.97, 0.97]})
    table = search.confirmation(frame, [record("simple_cnn", 8), record("simple_cnn_copy", 8)], "digits", resampled,
                                [101, 102, 103])
    (pair,) = search.order_pairs(table, resampled, [101, 102, 103])
    assert pair[2].tied and pair[3].tied and (pair[3].low, pair[3].high) == (0.0, 0.0)
    assert "did not change" in search.order_verdict([pair])


def test_the_budget_is_stated_once_when_equal_and_each_when_not():
    same = search.budget_sentence([record("a", 8), record("b", 8)])
    assert same.startswith("Every architecture got the same search budget: **8 trials** (random; rungs 8 trials × 1 epochs")
    other = record("b", 8, halving=False)
    differ = search.budget_sentence([record("a", 8), other])
    assert differ.startswith("**The search budgets differ**") and "a on digits: 8 trials" in differ


def test_asynchronous_searches_say_a_fresh_run_may_choose_differently():
    synchronous = search.budget_sentence([record("a", 8), record("b", 8)])
    assert "each" in synchronous and "asynchronous" not in synchronous
    first, second = record("a", 8), record("b", 8)
    for spent, one in ((40, first), (37, second)):
        one["plan"]["asynchronous"], one["epochs_spent"] = True, spent
    sentence = search.budget_sentence([first, second])
    assert "37–40 training epochs, no rung beyond its planned trials" in sentence
    assert "**asynchronous** (ASHA, 4 lanes)" in sentence and "a fresh run elsewhere may choose differently" in sentence


def test_the_search_plot_stays_readable_at_64_trials():
    import matplotlib.pyplot as plt

    fig = search.plot_search(record("simple_cnn", 64))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 and fig.get_figwidth() <= 16
    plt.close(fig)


def test_the_settings_plots_and_importances_are_optunas_with_log_axes_where_the_space_is_logarithmic():
    import matplotlib.pyplot as plt

    searched = record("simple_cnn", 64)
    slices, parallel = search.plot_settings(searched)
    by_label = {ax.get_xlabel(): ax for ax in slices.axes if ax.get_xlabel()}
    assert set(by_label) == set(SPACE)
    assert by_label["learning_rate"].get_xscale() == "log" and by_label["label_smoothing"].get_xscale() == "linear"
    chosen = searched["chosen"]["settings"]["learning_rate"]
    assert any(line.get_xdata()[0] == chosen for line in by_label["learning_rate"].get_lines())  # the chosen value
    assert parallel.axes
    shares = search.importances(searched)
    assert set(shares["setting"]) == set(SPACE) and all(share.endswith("%") for share in shares["importance (fANOVA)"])
    assert search.importances(record("simple_cnn", 3, halving=False)) is None
    plt.close("all")


def test_the_chosen_recipe_stands_beside_the_default_one():
    chosen = record("a", 8)
    table = search.chosen_recipe(chosen, {"learning_rate": 0.001, "batch_size": 128, "label_smoothing": 0.0})
    assert list(table["setting"]) == list(chosen["chosen"]["settings"])
    shown = table.set_index("setting")
    assert shown.loc["batch_size", "default recipe"] == "128" and shown.loc["learning_rate", "default recipe"] == "0.001"
    html = table.style.to_html()
    assert "128.000000" not in html and "0.000000" not in html


def test_a_chosen_value_at_an_end_of_its_range_is_flagged():
    chosen = record("a", 8)
    chosen["chosen"]["settings"].update({"learning_rate": 0.0098, "label_smoothing": 0.1, "batch_size": 32})
    notes = search.chosen_recipe(chosen, {}).set_index("setting")["note"]
    assert notes["learning_rate"] == "at the upper end of its range: widen the range"
    assert notes["label_smoothing"] == "" and notes["batch_size"] == ""
    chosen["chosen"]["settings"]["label_smoothing"] = 0.005
    assert search.chosen_recipe(chosen, {}).set_index("setting").loc["label_smoothing", "note"].startswith("at the lower")


def test_budget_curves_show_the_best_so_far_over_repeats():
    import matplotlib.pyplot as plt

    first, second = record("a", 8, halving=False), record("a", 8, halving=False)
    second["plan"]["repeat"] = 1
    for trial in second["trials"]:
        trial["score"] = trial["score"] - 0.01 * (trial["trial"] % 2)
    first["trials"][2]["score"] = None  # a diverged trial: no score, not a crash
    best = search.best_so_far(first)
    assert len(best) == 8 and all(np.diff(best) >= 0)
    assert [r["plan"].get("repeat", 0) for r in search.main_records([first, second])] == [0]
    fig = search.plot_budget_curves([first, second, record("b", 8, halving=False)], "digits")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["a (2 repeats)", "b (1 repeat)"]
    assert len(ax.collections) == 1  # one band: a's spread over its two repeats
    plt.close(fig)
