"""The report's Search section: each architecture's search (scores against trial number with the best so far,
the rungs, each searched setting against its score), its chosen recipe, and the confirmation of the chosen
recipes on fresh seeds: tuned against default per architecture, and both rankings."""

import numpy as np
import pandas as pd

from ..base.atomic import read_json
from ..base.style import suptitle
from ..tune.space import parse_space
from .confidence import points
from .page import panel_grid

RUNG_COLORS = ["tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]


def load_records(paths):
    return [read_json(path) for path in paths]


def repeat_of(record):
    return record["plan"].get("repeat", 0)


def main_records(records):
    """Repeat 0 of every search: the one whose choice is confirmed."""
    return [record for record in records if repeat_of(record) == 0]


def best_so_far(record):
    """Best rung-0 validation accuracy among the first n trials, n = 1 .. trials (a diverged trial scores nothing)."""
    first = sorted((trial for trial in record["trials"] if trial["rung"] == 0), key=lambda trial: trial["trial"])
    return np.maximum.accumulate([-np.inf if trial["score"] is None else trial["score"] for trial in first])


def plot_budget_curves(records, dataset):
    """Per architecture, the expected best validation accuracy after n trials (Dodge et al. 2019, "Show your
    work"): the mean over the search's repeats of the best rung-0 score among its first n trials, the band
    spanning the repeats. Flat curves: more trials would not have helped; crossing curves: the ranking depends
    on the budget."""
    import matplotlib.pyplot as plt

    from ..base.style import STYLE

    by_arch = {}
    for record in records:
        if record["dataset"] == dataset:
            by_arch.setdefault(record["architecture"], []).append(best_so_far(record))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
        for arch, curves in by_arch.items():
            length = min(map(len, curves))
            stacked = np.array([curve[:length] for curve in curves])
            trials = np.arange(1, length + 1)
            line, = ax.plot(trials, stacked.mean(axis=0), marker="o", markersize=3, label=f"{arch} ({len(curves)} repeat{'s' * (len(curves) > 1)})")
            if len(curves) > 1:
                ax.fill_between(trials, stacked.min(axis=0), stacked.max(axis=0), color=line.get_color(), alpha=0.2)
        epochs = records[0]["plan"]["rungs"][0]["epochs"]
        ax.set(xlabel="trials", ylabel=f"best validation accuracy (rung 0: {epochs} epoch{'s' * (epochs != 1)})",
               title=f"Expected best validation accuracy against the budget on {dataset}")
        ax.legend(fontsize=8, loc="lower right")
    return fig


def trials_frame(record):
    """One row per trained trial: trial, rung, epochs, score, and one column per searched setting."""
    rows = [{"trial": trial["trial"], "rung": trial["rung"], "epochs": trial["epochs"], "score": trial["score"],
             "variant": trial["variant"], **trial["settings"]} for trial in record["trials"]]
    return pd.DataFrame(rows)


def failed_trials(record):
    """One line per trial that failed (out of memory, a crash, a NaN loss), with its settings and why; None when
    none did. The search went on without them."""
    failed = [trial for trial in record["trials"] if trial.get("score") is None]
    if not failed:
        return None
    lines = [f"- trial {trial['trial']} at rung {trial['rung']} "
             f"({', '.join(f'{key} {shown_value(value)}' for key, value in trial['settings'].items())}): "
             f"{trial.get('failed') or 'diverged: the loss became NaN'}" for trial in failed]
    return (f"**{len(failed)} trial run(s) failed** and the search went on without them (a failed trial is never "
            "promoted, and only a NaN loss informs TPE, as the worst score). To train one again, remove its folder "
            f"under results/experiments/{record['dataset']}/{record['architecture']}/ and rerun.\n\n" + "\n".join(lines))


def plot_search(record):
    """Validation accuracy against trial number (rung 0, best so far as a step line, later rungs as larger
    marks) and the rungs (each promoted trial's line). The settings against their scores are Optuna's slice
    and parallel-coordinate plots (plot_settings)."""
    import matplotlib.pyplot as plt

    from ..base.style import STYLE

    plan = record["plan"]
    trials = trials_frame(record)
    first = trials[trials["rung"] == 0].sort_values("trial")
    with plt.rc_context(STYLE):
        fig, axes = panel_grid(2, 3.6, 3.2)
        ax = axes.flat[0]
        for rung in sorted(trials["rung"].unique()):
            part = trials[trials["rung"] == rung]
            ax.scatter(part["trial"], part["score"], s=10 + 14 * rung, color=RUNG_COLORS[rung % len(RUNG_COLORS)],
                       label=f"rung {rung}: {part['epochs'].iloc[0]} epochs", zorder=3, alpha=0.8)
        ax.step(first["trial"], first["score"].fillna(-np.inf).cummax(), where="post", color="black", linewidth=1,
                label="best so far (rung 0)")
        ax.set(xlabel="trial", ylabel="validation accuracy", title="trials in proposal order")
        ax.legend(fontsize=7, loc="lower right")
        ax = axes.flat[1]
        for number, runs in trials.groupby("trial"):
            if len(runs) > 1:
                ax.plot(runs["epochs"], runs["score"], marker="o", markersize=3, linewidth=0.8)
        ax.scatter(first["epochs"], first["score"], s=8, color="tab:gray", zorder=3)
        ax.set(xlabel="epochs (rung budget)", ylabel="validation accuracy",
               title="rungs: which trials went on" if len(plan["rungs"]) > 1 else "one rung (no halving)")
        suptitle(fig, f"Search of {record['architecture']} on {record['dataset']}: {plan['method']}, {plan['trials']} trials")
    return fig


def search_study(record, rung=0):
    """The record's scored trials at `rung` (the one all trials reach, at one budget) as an Optuna study, for
    Optuna's importances and plots. A baseline recipe outside the searched ranges has no place in it."""
    import optuna

    from ..tune.proposals import optuna_distribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {dimension.key: optuna_distribution(dimension) for dimension in parse_space(record["plan"]["space"])}
    study = optuna.create_study(direction="maximize")
    for trial in record["trials"]:
        if trial["rung"] != rung or trial.get("score") is None:
            continue
        try:
            study.add_trial(optuna.trial.create_trial(params=trial["settings"], distributions=distributions,
                                                      value=trial["score"]))
        except ValueError:
            continue
    return study


def importances(record):
    """Each searched setting's share of the variance in rung-0 validation accuracy: Optuna's fANOVA
    (Hutter et al. 2014), seeded. None with fewer than 4 scored trials: no model of the scores to split."""
    import optuna

    study = search_study(record)
    if len(study.trials) < 4:
        return None
    shares = optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    return pd.DataFrame({"setting": list(shares), "importance (fANOVA)": [f"{float(v):.0%}" for v in shares.values()]})


def plot_settings(record):
    """Optuna's slice plot (each setting against the rung-0 score, the chosen value dashed in red) and its
    parallel-coordinate plot, as two matplotlib figures; None with fewer than two scored trials."""
    import warnings

    import optuna.visualization.matplotlib as optuna_plots

    study = search_study(record)
    if len(study.trials) < 2:
        return None
    chosen = record["chosen"]["settings"]
    with warnings.catch_warnings():  # Optuna marks its matplotlib backend experimental
        warnings.simplefilter("ignore")
        slices = np.atleast_1d(optuna_plots.plot_slice(study))
        for ax in slices:
            key = ax.get_xlabel()
            value = chosen.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and ax.get_xscale() in ("linear", "log"):
                ax.axvline(value, color="tab:red", linewidth=1, linestyle="--")
        parallel = optuna_plots.plot_parallel_coordinate(study)
    return slices[0].figure, parallel.figure


def shown_value(value):
    """A setting as written in a config: 64, 0.0003, sgd (a column of mixed values would print 64.000000)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return str(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def chosen_recipe(record, default_settings):
    """The chosen trial's searched settings beside the default recipe's, each as a config writes it, and a
    note where the chosen value lies at an end of its range (the best may lie beyond it)."""
    chosen = record["chosen"]
    dimensions = {dimension.key: dimension for dimension in parse_space(record["plan"]["space"])}
    return pd.DataFrame({
        "setting": list(chosen["settings"]),
        "default recipe": [shown_value(default_settings.get(key)) for key in chosen["settings"]],
        f"chosen (trial {chosen['trial']})": [shown_value(value) for value in chosen["settings"].values()],
        "note": [edge_note(dimensions[key], value) for key, value in chosen["settings"].items()],
    })


def edge_note(dimension, value):
    end = dimension.near_end(value)
    return f"at the {end} end of its range: widen the range" if end else ""


def model_name(summary, arch, variant):
    """The report's name for (architecture, variant): summary's `model` column."""
    rows = summary[(summary["architecture"] == arch) & (summary["variant"].astype(str) == variant)]
    return rows["model"].iloc[0] if len(rows) else None


def confirmation(summary, records, dataset, resampled, confirm_seeds):
    """Per architecture: default and tuned recipe on the confirmation seeds (mean test accuracy), the tuned −
    default difference with its interval over seeds and test images (report.verdicts), and each
    architecture's rank untuned and tuned."""
    rows = []
    for record in (record for record in records if record["dataset"] == dataset):
        arch = record["architecture"]
        default, tuned = (model_name(summary, arch, variant) for variant in (record["baseline"], record["confirmed_as"]))
        if default is None or tuned is None:
            continue
        diff = resampled.difference(tuned, default, seeds=confirm_seeds)
        rows.append({"architecture": arch, "seeds": len(diff.seeds), "default": resampled.mean(default, diff.seeds),
                     "tuned": resampled.mean(tuned, diff.seeds), "difference": diff.mean, "ci_low": diff.low,
                     "ci_high": diff.high, "verdict": "better beyond noise" if not diff.tied and diff.mean > 0 else
                     "worse beyond noise" if not diff.tied else "no effect beyond noise",
                     "validation (search)": record["chosen"]["validation_accuracy"], "default_model": default,
                     "tuned_model": tuned})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["rank untuned"] = table["default"].rank(ascending=False, method="min").astype(int)
    table["rank tuned"] = table["tuned"].rank(ascending=False, method="min").astype(int)
    return table.sort_values("tuned", ascending=False, ignore_index=True)


def style_confirmation(table):
    shown = pd.DataFrame({
        "architecture": table["architecture"], "rank tuned": table["rank tuned"], "rank untuned": table["rank untuned"],
        "test accuracy, tuned": table["tuned"].map("{:.2%}".format),
        "test accuracy, default": table["default"].map("{:.2%}".format),
        "tuned − default": table["difference"].map(points),
        "95 % interval": [f"[{100 * low:+.2f}, {100 * high:+.2f}] points" for low, high in zip(table["ci_low"], table["ci_high"])],
        "verdict": table["verdict"], "paired seeds": table["seeds"],
        "validation accuracy in the search": table["validation (search)"].map("{:.2%}".format),
    })
    return shown.style.hide(axis="index")


def order_pairs(table, resampled, confirm_seeds):
    """Every pair of architectures under both recipes on the confirmation seeds: (a, b, default a − b, tuned a − b),
    a ahead of b under the tuned recipes."""
    pairs = []
    for i, a in enumerate(table.itertuples(index=False)):
        for b in table.iloc[i + 1:].itertuples(index=False):
            pairs.append((a.architecture, b.architecture,
                          resampled.difference(a.default_model, b.default_model, seeds=confirm_seeds),
                          resampled.difference(a.tuned_model, b.tuned_model, seeds=confirm_seeds)))
    return pairs


def flipped(default, tuned):
    """A pair flipped: each recipe's interval excludes 0, on opposite sides. Anything less is no flip."""
    return not default.tied and not tuned.tied and (default.mean > 0) != (tuned.mean > 0)


def order_verdict(pairs):
    """The sentence on the order: a change only where a pair flipped beyond noise under both recipes."""
    flips = [(a, b, default, tuned) for a, b, default, tuned in pairs if flipped(default, tuned)]
    if not flips:
        return "The order did not change beyond noise (every pair's intervals below)."
    listed = "; ".join(f"{a} now ahead of {b} (tuned {tuned.text()}, default {default.text()})"
                       for a, b, default, tuned in flips)
    return f"**Tuning changed the order beyond noise**: {listed}."


def style_order_pairs(pairs):
    """Each pair's difference under the default and the tuned recipes, with both intervals and what they say."""
    def reading(diff, a, b):
        return "tied" if diff.tied else f"{a} ahead" if diff.mean > 0 else f"{b} ahead"

    return pd.DataFrame([{
        "pair (a − b)": f"{a} − {b}", "default recipes": default.text(), "default says": reading(default, a, b),
        "tuned recipes": tuned.text(), "tuned says": reading(tuned, a, b),
        "flipped beyond noise": "yes" if flipped(default, tuned) else "no"}
        for a, b, default, tuned in pairs]).style.hide(axis="index")


def budget_sentence(records):
    """What every architecture's search cost: one statement when all were planned alike (trials, rungs' epochs),
    else one warning line listing each, so "the same budget" is never claimed where it was not; the epochs each
    spent, which may differ by the baseline recipe's extra run, failed trials, or an asynchronous search's order;
    and, for asynchronous searches, that a fresh run may choose differently."""
    def budget(record):
        plan = record["plan"]
        return (plan["method"], plan["trials"], tuple((rung["epochs"], rung["trials"]) for rung in plan["rungs"]))

    first = records[0]["plan"]
    rungs = " → ".join(f"{rung['trials']} trials × {rung['epochs']} epochs" for rung in first["rungs"])
    if len({budget(record) for record in records}) == 1:
        spent = sorted({record["epochs_spent"] for record in records})
        epochs = (f"{spent[0]} training epochs each" if len(spent) == 1 else
                  f"{spent[0]}–{spent[-1]} training epochs, no rung beyond its planned trials")
        sentence = (f"Every architecture got the same search budget: **{first['trials']} trials** ({first['method']}; "
                    f"rungs {rungs}; {epochs}).")
    else:
        each = "; ".join(f"{record['architecture']} on {record['dataset']}: {record['plan']['trials']} trials, "
                         f"{record['epochs_spent']} epochs" for record in records)
        sentence = (f"**The search budgets differ** (their epochs or rungs differ, e.g. through `architecture_options`): "
                    f"{each}. Compare the tuned results with that in mind.")
    return sentence + asynchronous_note(records)


def asynchronous_note(records):
    """For asynchronous searches: their proposals depend on the order trials finished in (empty otherwise)."""
    lanes = sorted({record["plan"]["batch"] for record in records if record["plan"].get("asynchronous")})
    if not lanes:
        return ""
    return (f" The searches were **asynchronous** (ASHA, {' or '.join(map(str, lanes))} lanes): each lane proposed its "
            "next trial as soon as its last one finished, so what was proposed depends on the order trials finished "
            "in, and **a fresh run elsewhere may choose differently**; this run's choices are kept in its records "
            "(rerunning it changes nothing).")
