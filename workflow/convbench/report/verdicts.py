"""Who is ahead beyond noise: the difference in test accuracy between two compared models with a 95 %
interval that covers both sources of noise, seeds and test images.

The interval is a two-level (hierarchical) percentile bootstrap (Bouthillier et al. 2021, "Accounting for
variance in machine learning benchmarks"; Dror et al. 2018, "The hitchhiker's guide to testing statistical
significance"): each replicate draws the shared seeds with replacement and, within them, the test images with
replacement, the same images for both models (paired: every model saw the same test split). With one seed
only test sampling is covered, and the verdicts say so. Two models whose interval includes 0 are **tied**;
identical predictions give [0, 0] and so are always tied.

Why not a library: `scipy.stats.bootstrap` resamples one level (it is the oracle our one-seed case is tested
against); rliable's stratified bootstrap resamples runs within tasks, not images within runs; baycomp's
region of practical equivalence needs a width of "equivalent" chosen per study. The nested resampling is a
few lines of NumPy, seeded, so a report is the same every time it is built.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESAMPLES = 4000
CONFIDENCE = 0.95
METHOD = ("paired two-level bootstrap over seeds and test images, 95 % percentile interval "
          "(Bouthillier et al. 2021; Dror et al. 2018)")


@dataclass(frozen=True)
class Difference:
    """a − b in test accuracy (fractions) on their shared seeds and the same test images."""
    a: str
    b: str
    mean: float
    low: float
    high: float
    seeds: tuple
    images: int

    @property
    def tied(self):
        return self.low <= 0 <= self.high

    @property
    def covers(self):
        return "seeds and test images" if len(self.seeds) > 1 else "test images only (one seed)"

    def interval(self):
        return f"[{100 * self.low:+.1f}, {100 * self.high:+.1f}]"

    def text(self):
        """`+0.3 points [−0.8, +1.4]`"""
        return f"{100 * self.mean:+.1f} points {self.interval()}"


def experiment_correctness(experiment_dir):
    """(labels, right): the test labels and whether the model's top prediction was right, per image."""
    with np.load(Path(experiment_dir) / "test_predictions.npz") as data:
        labels = data["labels"]
        return labels, data["probabilities"].argmax(axis=1) == labels


def correctness(summary, dataset):
    """{model: {seed: right per test image}} for the dataset's experiments. Every model must have been
    tested on the same images in the same order (the labels agree), or the pairing would be wrong."""
    table, reference = {}, None
    for experiment in summary[summary["dataset"] == dataset].itertuples(index=False):
        labels, right = experiment_correctness(experiment.experiment_dir)
        if reference is None:
            reference = labels
        elif len(labels) != len(reference) or not np.array_equal(labels, reference):
            raise ValueError(f"{experiment.experiment_dir} was tested on other images than the rest of {dataset}: "
                             "pairing its predictions with theirs would compare different tests")
        table.setdefault(experiment.model, {})[int(experiment.seed)] = right
    return table


class Resampled:
    """Every experiment of a dataset under the same RESAMPLES draws of the test images (that is the pairing):
    one matrix product, after which any pair's or model's interval costs a few vector operations.

    `right`: correctness' table. Seeds are then drawn per comparison, from a generator seeded by how many
    seeds it shares, so a report is identical each time it is built."""

    def __init__(self, right, seed=0, resamples=RESAMPLES, chunk=250):
        self.right, self.seed, self.resamples = right, seed, resamples
        columns = [(model, s) for model in right for s in sorted(right[model])]
        outcomes = np.stack([right[model][s] for model, s in columns], axis=1).astype(np.float64)  # images × runs
        images = outcomes.shape[0]
        rng = np.random.default_rng(seed)
        parts = []
        for start in range(0, resamples, chunk):  # chunks: 250 × 10,000 images of weights is 20 MB
            weights = rng.multinomial(images, np.full(images, 1 / images), size=min(chunk, resamples - start))
            parts.append(weights @ outcomes / images)
        resampled = np.concatenate(parts)
        self.accuracy = {column: resampled[:, index] for index, column in enumerate(columns)}
        self.images = images
        self._weights_by_count = {}  # seed draws per number of shared seeds: the same for every comparison

    def models(self):
        return list(self.right)

    def seeds(self, model):
        return sorted(self.right[model])

    def mean(self, model, seeds=None):
        return float(np.mean([self.right[model][s].mean() for s in (seeds or self.seeds(model))]))

    def _seed_weights(self, count):
        if count not in self._weights_by_count:
            rng = np.random.default_rng([self.seed, count])
            self._weights_by_count[count] = (np.ones((self.resamples, 1)) if count == 1 else
                                             rng.multinomial(count, np.full(count, 1 / count), size=self.resamples) / count)
        return self._weights_by_count[count]

    def _interval(self, columns_by_seed):
        """Percentile interval of the seed-weighted resampled values; columns_by_seed: one vector per seed."""
        values = np.einsum("rs,rs->r", self._seed_weights(len(columns_by_seed)), np.stack(columns_by_seed, axis=1))
        tail = 100 * (1 - CONFIDENCE) / 2
        low, high = np.percentile(values, [tail, 100 - tail])
        return float(low), float(high)

    def difference(self, a, b, seeds=None):
        """The Difference a − b on the seeds both ran (of `seeds`, when given)."""
        shared = tuple(sorted(set(self.right[a]) & set(self.right[b]) & set(seeds if seeds is not None else self.right[a])))
        if not shared:
            raise ValueError(f"{a} and {b} share no seed: nothing to pair")
        low, high = self._interval([self.accuracy[a, s] - self.accuracy[b, s] for s in shared])
        # the same predictions give exactly [0, 0]: both models' resampled accuracies are the same floats
        return Difference(a, b, self.mean(a, shared) - self.mean(b, shared), low, high, shared, self.images)

    def accuracy_interval(self, model):
        """(low, high) of one model's test accuracy over its seeds and the test images."""
        return self._interval([self.accuracy[model, s] for s in self.seeds(model)])


def standings(resampled):
    """(leader, [(model, mean accuracy, Difference leader − model or None for the leader)]): the models ranked by
    mean accuracy on the seeds all of them ran (each on its own where they share none)."""
    common = sorted(set.intersection(*(set(resampled.seeds(model)) for model in resampled.models())))
    order = sorted(resampled.models(), key=lambda model: resampled.mean(model, common), reverse=True)
    leader = order[0]
    return leader, [(model, resampled.mean(model, common), None if model == leader else resampled.difference(leader, model))
                    for model in order]


def lead_sentence(dataset, resampled):
    """The report's first line for a dataset: a leader only when it is ahead of every other model beyond
    noise, otherwise who is tied for first, with the difference and its interval."""
    leader, ranked = standings(resampled)
    tied = [(model, diff) for model, _, diff in ranked[1:] if diff.tied]
    accuracy = ranked[0][1]
    if len(ranked) == 1:
        return f"On **{dataset}**, **{leader}** reaches a mean test accuracy of **{accuracy:.2%}** (the only model)."
    if not tied:
        runner, _, gap = ranked[1]
        return (f"On **{dataset}**, **{leader}** leads with a mean test accuracy of **{accuracy:.2%}**, ahead of every "
                f"other model beyond noise (next: {runner}, {gap.text()}; {gap.covers}).")
    names = [leader] + [model for model, _ in tied]
    listed = ", ".join(f"**{name}**" for name in names[:-1]) + f" and **{names[-1]}**"
    gaps = "; ".join(f"{leader} − {model} {diff.text()}" for model, diff in tied)
    return (f"On **{dataset}**, {listed} are tied for first within noise ({gaps}; {tied[0][1].covers}); "
            f"{leader} has the highest mean, {accuracy:.2%}.")


def first_place(summary, dataset, resampled):
    """{(architecture, variant)} of the leader and every model tied with it: the leaderboard marks them all."""
    leader, ranked = standings(resampled)
    models = {model for model, _, diff in ranked if diff is None or diff.tied}
    rows = summary[(summary["dataset"] == dataset) & summary["model"].isin(models)]
    return set(zip(rows["architecture"], rows["variant"].astype(str)))
