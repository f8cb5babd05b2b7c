"""How sure: every compared model against the leader and against each other, and each variant's effect
against the baseline, as paired differences with intervals over seeds and test images (report.verdicts)."""

import pandas as pd

from .verdicts import METHOD, standings


def points(difference):
    """A difference of two accuracies in percentage points, as the accuracies are shown in percent."""
    return f"{100 * difference:+.2f} points"


def standings_table(resampled):
    """One row per model, best mean first: its seeds, mean accuracy with its interval, and its difference
    from the leader with the interval and the verdict (tied with the leader or behind it beyond noise)."""
    leader, ranked = standings(resampled)
    rows = []
    for model, mean, diff in ranked:
        low, high = resampled.accuracy_interval(model)
        rows.append({
            "model": model, "seeds": ", ".join(map(str, resampled.seeds(model))), "accuracy (mean)": mean,
            "accuracy 95 % interval": f"[{low:.2%}, {high:.2%}]",
            f"difference from {leader}": "–" if diff is None else f"{100 * (-diff.mean or 0.0):+.2f} points",
            "95 % interval of the difference": "–" if diff is None else
            f"[{100 * (-diff.high or 0.0):+.2f}, {100 * (-diff.low or 0.0):+.2f}]",  # `or 0.0`: no "-0.00"
            "verdict": "leader" if diff is None else ("tied with the leader" if diff.tied else "behind beyond noise"),
            "noise covered": "–" if diff is None else diff.covers,
        })
    return pd.DataFrame(rows)


TIED, AHEAD, BEHIND = "background-color:#eeeeee", "background-color:#d4edda", "background-color:#f8d0d0"


def pairwise_matrix(resampled):
    """Every pair: row − column in points with its interval, green where the row is ahead beyond noise,
    red where behind, grey where tied."""
    cells, colors = pairwise_cells(resampled)
    return cells.style.apply(lambda _: colors, axis=None)


def pairwise_cells(resampled):
    """(texts, CSS) of pairwise_matrix, as two square frames in ranking order."""
    _, ranked = standings(resampled)
    models = [model for model, _, _ in ranked]
    cells = pd.DataFrame("", index=models, columns=models)
    colors = pd.DataFrame("", index=models, columns=models)
    for row in models:
        for column in models:
            if row == column:
                continue
            diff = resampled.difference(row, column)
            cells.loc[row, column] = diff.text()
            colors.loc[row, column] = TIED if diff.tied else AHEAD if diff.mean > 0 else BEHIND
    return cells, colors


def variant_effects(summary, dataset, resampled):
    """For each architecture trained under two or more variants: each variant's effect on test accuracy
    against the first one (the baseline), paired by seed and test image (report.verdicts). None when no
    architecture has two variants. `resampled`: the dataset's verdicts.Resampled, keyed by summary's `model`."""
    data = summary[summary["dataset"] == dataset]
    rows = []
    for architecture, runs in data.groupby("architecture", sort=False):
        variants = [variant for variant in runs["variant"].cat.categories if variant in set(runs["variant"])]
        if len(variants) < 2:
            continue
        model = dict(zip(runs["variant"].astype(str), runs["model"]))
        baseline = variants[0]
        for variant in variants[1:]:
            diff = resampled.difference(model[variant], model[baseline])
            rows.append({
                "architecture": architecture, "variant": variant, "baseline": baseline,
                "changes": runs.loc[runs["variant"] == variant, "variant_changes"].iloc[0],
                "paired_seeds": len(diff.seeds), "difference": diff.mean, "ci_low": diff.low, "ci_high": diff.high,
                "verdict": "no effect beyond noise" if diff.tied else ("better beyond noise" if diff.mean > 0
                                                                        else "worse beyond noise"),
                "noise covered": diff.covers,
            })
    return pd.DataFrame(rows) if rows else None


def style_variant_effects(effects):
    """The effects table as a reader wants it: the signed difference, its interval and the verdict (what each
    variant changes is listed once, in the table above it)."""
    table = pd.DataFrame({
        "architecture": effects["architecture"], "variant": effects["variant"], "paired seeds": effects["paired_seeds"],
        "difference (variant − baseline)": effects["difference"].map(points),
        "95 % interval": [f"[{100 * low:+.2f}, {100 * high:+.2f}] points"
                          for low, high in zip(effects["ci_low"], effects["ci_high"])],
        "verdict": effects["verdict"], "noise covered": effects["noise covered"],
    })
    return table.style.hide(axis="index")


def method_note():
    return (f"Intervals: {METHOD}. A difference whose interval includes 0 is **tied**: the data cannot tell the two "
            "apart. With one seed the interval covers the sampling of the test images only, not the seed-to-seed "
            "spread of training; run three or more seeds for both.")
