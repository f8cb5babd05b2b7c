"""The report's Tuned comparison section: confirmation paired by seed, both rankings, and a search plot
that stays readable with many trials."""

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


def summary(accuracy):
    """summary.csv rows: {(arch, variant): [accuracy per confirmation seed]}."""
    rows = [{"dataset": "digits", "architecture": arch, "variant": variant, "seed": 101 + index, "accuracy": value}
            for (arch, variant), values in accuracy.items() for index, value in enumerate(values)]
    frame = pd.DataFrame(rows)
    frame["variant"] = pd.Categorical(frame["variant"], categories=["default", "tuned"])
    return frame


def test_confirmation_pairs_by_seed_and_ranks_both_ways():
    table = search.confirmation(summary({("a", "default"): [0.90, 0.92, 0.94], ("a", "tuned"): [0.91, 0.93, 0.95],
                                         ("b", "default"): [0.95, 0.95, 0.96], ("b", "tuned"): [0.90, 0.91, 0.90]}),
                                [record("a", 8), record("b", 8)], "digits")
    a, b = (table.set_index("architecture").loc[name] for name in ("a", "b"))
    assert a["difference"] == pytest.approx(0.01) and a["ci_low"] == a["ci_high"] == pytest.approx(0.01)  # same gain each seed
    assert b["difference"] == pytest.approx(-0.05) and b["ci_low"] < -0.05 < b["ci_high"] < 0
    assert (a["rank untuned"], a["rank tuned"], b["rank untuned"], b["rank tuned"]) == (2, 1, 1, 2)
    assert list(table["architecture"]) == ["a", "b"] and search.order_changed(table)
    html = search.style_confirmation(table).to_html()
    assert "+1.00 points" in html and "[-" in html


def test_the_search_plot_stays_readable_at_64_trials_and_has_log_axes_where_the_space_is_logarithmic():
    fig = search.plot_search(record("simple_cnn", 64))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 + len(SPACE) and fig.get_figwidth() <= 16  # 4 panels a row, then wrapped
    by_label = {ax.get_xlabel(): ax for ax in axes}
    assert by_label["learning_rate"].get_xscale() == "log" and by_label["label_smoothing"].get_xscale() == "linear"
    assert [tick.get_text() for tick in by_label["batch_size"].get_xticklabels()] == ["32", "64", "128"]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_the_chosen_recipe_stands_beside_the_default_one():
    chosen = record("a", 8)
    table = search.chosen_recipe(chosen, {"learning_rate": 0.001, "batch_size": 128, "label_smoothing": 0.0})
    assert list(table["setting"]) == list(chosen["chosen"]["settings"])
    assert table.set_index("setting").loc["batch_size", "default recipe"] == 128
