"""How sure: t intervals of the mean accuracy over seeds, paired tests of the leader against every
other model, and each variant's paired effect against the baseline."""

import numpy as np
import pandas as pd


def accuracy_interval(accuracy, confidence=0.95):
    """t interval of the mean accuracy over seeds, clipped to [0, 1] (the t interval knows no
    bounds: 0.99 +- 0.02 would claim 101 %); identical seeds give the point itself."""
    from scipy import stats  # here, not at the top: scipy.stats alone takes 0.4 s to import

    mean, sem = float(np.mean(accuracy)), float(stats.sem(accuracy))
    if sem == 0:
        return mean, mean
    low, high = stats.t.interval(confidence, len(accuracy) - 1, loc=mean, scale=sem)
    return max(0.0, low), min(1.0, high)


def seed_statistics(summary, dataset, confidence=0.95, by="architecture"):
    """Per compared model (column `by`): mean test accuracy with a t-based confidence interval over
    seeds, and a paired t-test (paired by seed) of the leader against every other one.

    Returns None with fewer than three seeds: two points give no usable spread.
    """
    from scipy import stats

    data = summary[summary["dataset"] == dataset]
    if data.groupby(by, observed=True)["seed"].nunique().min() < 3:
        return None
    rows = []
    for name, runs in data.groupby(by, observed=True, sort=False):
        accuracy = runs["accuracy"].to_numpy()
        low, high = accuracy_interval(accuracy, confidence)
        rows.append({by: name, "seeds": len(accuracy), "accuracy_mean": accuracy.mean(), "ci_low": low, "ci_high": high})
    table = pd.DataFrame(rows).sort_values("accuracy_mean", ascending=False, ignore_index=True)
    leader = table[by].iloc[0]
    by_seed = data.pivot_table(index="seed", columns=by, values="accuracy", observed=True)
    p_values = []
    for name in table[by]:
        pair = by_seed[[leader, name]].dropna()
        p_values.append(None if name == leader else float(stats.ttest_rel(pair[leader], pair[name]).pvalue))
    table[f"p_vs_{leader}"] = p_values
    return table


def variant_effects(summary, dataset, confidence=0.95):
    """For each architecture trained under two or more variants: every variant's effect on test
    accuracy against the first one (the baseline), from seed-paired differences.

    One row per (architecture, variant): the mean paired difference, its t interval (two or more
    shared seeds) and the paired t-test's p-value (three or more). None when no architecture has
    two variants.
    """
    from scipy import stats

    data = summary[summary["dataset"] == dataset]
    rows = []
    for architecture, runs in data.groupby("architecture", sort=False):
        by_seed = runs.pivot_table(index="seed", columns="variant", values="accuracy", observed=True)
        variants = [variant for variant in runs["variant"].cat.categories if variant in by_seed]
        if len(variants) < 2:
            continue
        baseline = variants[0]
        for variant in variants[1:]:
            pair = by_seed[[baseline, variant]].dropna()
            difference = (pair[variant] - pair[baseline]).to_numpy()
            low = high = p_value = None
            if len(difference) >= 2:
                sem = stats.sem(difference)
                low, high = (difference.mean(),) * 2 if sem == 0 else stats.t.interval(
                    confidence, len(difference) - 1, loc=difference.mean(), scale=sem)
            if len(difference) >= 3 and stats.sem(difference) > 0:
                p_value = float(stats.ttest_rel(pair[variant], pair[baseline]).pvalue)
            rows.append({
                "architecture": architecture, "variant": variant, "baseline": baseline,
                "changes": runs.loc[runs["variant"] == variant, "variant_changes"].iloc[0],
                "paired_seeds": len(difference), "baseline_accuracy": pair[baseline].mean(),
                "variant_accuracy": pair[variant].mean(), "difference": difference.mean(),
                "ci_low": low, "ci_high": high, "p_value": p_value,
            })
    return pd.DataFrame(rows) if rows else None


def points(difference):
    """A difference of two accuracies in percentage points, as the accuracies are shown in percent."""
    return f"{100 * difference:+.2f} points"


def style_variant_effects(effects):
    """The effects table as a reader wants it: accuracies, the signed difference and its interval
    (what each variant changes is listed once, in the table above it)."""
    def interval(row):
        return "–" if pd.isna(row["ci_low"]) else f"[{100 * row['ci_low']:+.2f}, {100 * row['ci_high']:+.2f}] points"

    table = pd.DataFrame({
        "architecture": effects["architecture"], "variant": effects["variant"], "paired seeds": effects["paired_seeds"],
        "accuracy, baseline": effects["baseline_accuracy"], "accuracy, variant": effects["variant_accuracy"],
        "difference": effects["difference"], "95 % interval": effects.apply(interval, axis=1),
        "p-value": effects["p_value"],
    })
    return table.style.format({"accuracy, baseline": "{:.2%}", "accuracy, variant": "{:.2%}", "difference": points,
                               "p-value": "{:.3g}"}, na_rep="–").hide(axis="index")
