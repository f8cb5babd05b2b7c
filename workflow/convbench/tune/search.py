"""One architecture's search on one dataset, as a sequence of steps the workflow runs one after another.

A step proposes the trials to train next, from the validation scores of the steps before it:
- rung 0, the trials' first budget: one step for random and grid (every trial is known at once), for
  tpe the startup trials, then one step per `batch`;
- each later rung of successive halving: one step, the best 1/eta of the rung before.
Every trial of a step is an ordinary experiment (variant `trial007-r1`: trial 7 at rung 1), trained by
train_model with the search seed; a step's trials train in parallel. After the last step the best trial
of the last rung is the chosen recipe. Trials are numbered from 1, in the order they were proposed.
"""

import re
from dataclasses import dataclass

from ..base.config import lookup, merge_settings, nested
from .halving import Rung, promoted, rungs
from .proposals import proposals, startup_trials
from .space import parse_space

TRIAL_VARIANT = re.compile(r"trial(\d+)-r(\d+)")
TUNED_VARIANT = "tuned"  # the chosen recipe, retrained on the confirmation seeds


@dataclass(frozen=True)
class Plan:
    method: str
    dimensions: tuple
    trials: int
    batch: int
    seed: int
    rungs: tuple  # halving.Rung, the last one at the study's epochs

    @classmethod
    def from_config(cls, search, epochs):
        """The plan of the config's `search` section for an experiment trained for `epochs`."""
        halving = search.get("halving") or {}
        schedule = rungs(search["trials"], epochs, halving.get("min_epochs"), halving.get("eta", 3))
        return cls(search["method"], parse_space(search["space"]), search["trials"], search["batch"],
                   search["seed"], schedule)

    @classmethod
    def from_description(cls, described):
        """The plan describe() wrote (a rule's params, a record's `plan`)."""
        schedule = tuple(Rung(rung["rung"], rung["epochs"], rung["trials"]) for rung in described["rungs"])
        return cls(described["method"], parse_space(described["space"]), described["trials"], described["batch"],
                   described["seed"], schedule)

    def blocks(self):
        """The trials (first, last + 1) each rung-0 step proposes."""
        if self.method != "tpe":
            return [(0, self.trials)]
        bounds = [0, startup_trials(self.trials, self.batch)]
        while bounds[-1] < self.trials:
            bounds.append(min(bounds[-1] + self.batch, self.trials))
        return list(zip(bounds, bounds[1:]))

    def step_count(self):
        return len(self.blocks()) + len(self.rungs) - 1

    def step_of(self, trial, rung):
        """The step that proposes `trial` (numbered from 1) at `rung`."""
        if rung:
            return len(self.blocks()) + rung - 1
        return next(step for step, (first, last) in enumerate(self.blocks()) if first < trial <= last)

    def describe(self):
        return {"method": self.method, "trials": self.trials, "batch": self.batch, "seed": self.seed,
                "space": {dimension.key: {dimension.kind: list(dimension.values)} for dimension in self.dimensions},
                "rungs": [{"rung": rung.index, "epochs": rung.epochs, "trials": rung.trials} for rung in self.rungs]}


def trial_variant(trial, rung):
    return f"trial{trial:03d}-r{rung}"


def parse_trial_variant(variant):
    """(trial, rung) of a trial's variant name, or None for any other variant."""
    match = TRIAL_VARIANT.fullmatch(variant)
    return (int(match[1]), int(match[2])) if match else None


def step_trials(plan, step, record):
    """The trials `step` trains: [{trial, rung, epochs, settings, parent}], from the trials of the steps
    before it and their scores (`record`: those trials, each with its `score`, None if it diverged)."""
    blocks = plan.blocks()
    if step < len(blocks):
        first, last = blocks[step]
        earlier = [trial for trial in record if trial["rung"] == 0]
        scored = [(trial["settings"], worst_if_none(trial["score"])) for trial in earlier]
        proposed = proposals(plan.method, plan.dimensions, plan.trials, plan.batch, plan.seed, scored)
        epochs = plan.rungs[0].epochs
        return [{"trial": index + 1, "rung": 0, "epochs": epochs, "settings": proposed[index], "parent": None}
                for index in range(first, last)]
    rung = plan.rungs[step - len(blocks) + 1]
    before = {trial["trial"]: trial for trial in record if trial["rung"] == rung.index - 1}
    scores = {number: worst_if_none(trial["score"]) for number, trial in before.items()}
    return [{"trial": number, "rung": rung.index, "epochs": rung.epochs, "settings": before[number]["settings"],
             "parent": trial_variant(number, rung.index - 1)} for number in promoted(scores, rung.trials)]


def worst_if_none(score):
    """A diverged trial (no score) ranks below every trained one; TPE learns it is a bad region."""
    return -1.0 if score is None else score


def chosen_trial(plan, record):
    """The trial of the last rung with the best validation score (ties: the earlier trial)."""
    last = {trial["trial"]: worst_if_none(trial["score"]) for trial in record if trial["rung"] == plan.rungs[-1].index}
    (winner,) = promoted(last, 1)
    return next(trial for trial in record if trial["trial"] == winner and trial["rung"] == plan.rungs[-1].index)


def overrides(settings):
    """A trial's {dotted key: value} settings as nested training-setting overrides."""
    merged = {}
    for key, value in settings.items():
        merged = merge_settings(merged, nested(key, value))
    return merged


def trial_overrides(baseline, trial, plan):
    """What a trial's experiment changes: the baseline variant, the proposed settings, the rung's
    epochs; and (under `search`, recorded in train_meta.json, not a training setting) where it came from."""
    changes = merge_settings(merge_settings(baseline, overrides(trial["settings"])), {"epochs": trial["epochs"]})
    changes["search"] = {"method": plan.method, "seed": plan.seed, "trial": trial["trial"], "rung": trial["rung"],
                         "parent": trial["parent"]}
    return changes


def searched_values(settings, plan):
    """The searched settings' values in a full settings dict (e.g. the default recipe's)."""
    return {dimension.key: lookup(settings, dimension.key) for dimension in plan.dimensions}
