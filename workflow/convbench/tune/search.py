"""One architecture's search on one dataset, as a sequence of steps the workflow runs one after another.

A step proposes the trials to train next, from the validation scores of the steps before it:
- new trials at rung 0, the trials' first budget: one step for random and grid (every trial is known at
  once); for tpe the startup trials (the baseline recipe first, then the random search's points), then one
  step per `batch`, modeled on the highest rung with enough scores (BOHB's rule, `modeled_rung`);
- promotions of successive halving: the best of a rung go on to the next. A random or grid search promotes
  a rung once it is complete; a TPE search promotes as its batches finish (capped at halving's share), so
  its later batches can model a higher rung. The last rung is complete after the same number of steps.
Every trial of a step is an ordinary experiment (variant `trial007-r1`: trial 7 at rung 1), trained by
train_model with the search seed; a step's trials train in parallel. After the last step the best trial
of the last rung is the chosen recipe. Trials are numbered from 1, in the order they were proposed.
"""

import re
from dataclasses import dataclass, replace

from ..base.config import lookup, merge_settings, nested
from .halving import Rung, promoted, rungs
from .proposals import proposals, startup_trials, tpe_proposals
from .space import parse_space

# rep2-trial007-r1: repeat 2's trial 7 at rung 1; async-trial007-r1: an asynchronous search's (search.asynchronous)
TRIAL_VARIANT = re.compile(r"(?:rep(\d+)-)?(?:async-)?trial(\d+)-r(\d+)")
# The variant wildcard of every other experiment (train_model's): any name that is not a trial's.
NOT_A_TRIAL = rf"(?!{TRIAL_VARIANT.pattern}(?![A-Za-z0-9_.+=,-]))[A-Za-z0-9_.+=,-]+"
TUNED_VARIANT = "tuned"  # the chosen recipe, retrained on the confirmation seeds
PROPOSAL_SEED_STRIDE = 7919  # repeat r proposes from seed + 7919 r: no neighbouring search seed's proposals


@dataclass(frozen=True)
class Plan:
    method: str
    dimensions: tuple
    trials: int
    batch: int
    seed: int
    rungs: tuple  # halving.Rung, the last one at the study's epochs
    # The baseline recipe's values of the searched settings, ((key, value), ...): trial 1 of the search, as
    # Optuna's enqueue_trial, and run at the last rung too, so the chosen recipe is never worse than the default
    # on validation. Empty: no baseline trial (a plan described before it existed).
    baseline: tuple = ()
    # Which of `search.repeats` searches this is: repeat r proposes from its own seed (proposal_seed) while its
    # trials train with `seed`, as repeat 0's do, so a proposal two repeats share is one experiment.
    repeat: int = 0
    # Lanes of `batch` trials that each propose their next trial when their last one finishes (ASHA's rule,
    # convbench.tune.asynchronous), instead of steps that wait for a whole batch.
    asynchronous: bool = False

    @classmethod
    def from_config(cls, search, epochs, baseline=None):
        """The plan of the config's `search` section for an experiment trained for `epochs`; `baseline`: the
        baseline variant's settings (their searched values become trial 1)."""
        halving = search.get("halving") or {}
        schedule = rungs(search["trials"], epochs, halving.get("min_epochs"), halving.get("eta", 3))
        dimensions = parse_space(search["space"])
        enqueued = tuple((dimension.key, lookup(baseline, dimension.key)) for dimension in dimensions) if baseline else ()
        return cls(search["method"], dimensions, search["trials"], search["batch"], search["seed"], schedule, enqueued,
                   asynchronous=search.get("asynchronous", False))

    @classmethod
    def from_description(cls, described):
        """The plan describe() wrote (a rule's params, a record's `plan`)."""
        schedule = tuple(Rung(rung["rung"], rung["epochs"], rung["trials"]) for rung in described["rungs"])
        return cls(described["method"], parse_space(described["space"]), described["trials"], described["batch"],
                   described["seed"], schedule, tuple((described.get("baseline") or {}).items()),
                   described.get("repeat", 0), described.get("asynchronous", False))

    def for_repeat(self, repeat):
        return replace(self, repeat=repeat)

    @property
    def proposal_seed(self):
        """Repeat 0 proposes from `seed` itself; repeat r from another seed derived from it."""
        return self.seed + PROPOSAL_SEED_STRIDE * self.repeat

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

    def step_of(self, trial):
        """The step that proposes `trial` (numbered from 1) at rung 0 (a promotion's step depends on the scores:
        the record says, `step`)."""
        return next(step for step, (first, last) in enumerate(self.blocks()) if first < trial <= last)

    def describe(self):
        return {"method": self.method, "trials": self.trials, "batch": self.batch, "seed": self.seed,
                "space": {dimension.key: {dimension.kind: list(dimension.values)} for dimension in self.dimensions},
                "rungs": [{"rung": rung.index, "epochs": rung.epochs, "trials": rung.trials} for rung in self.rungs],
                **({"baseline": dict(self.baseline)} if self.baseline else {}),
                **({"repeat": self.repeat} if self.repeat else {}),
                **({"asynchronous": True} if self.asynchronous else {})}

    def baseline_trial(self):
        """The trial number of the baseline recipe (1), or None when the plan has none."""
        return 1 if self.baseline else None


def trial_variant(trial, rung):
    return f"trial{trial:03d}-r{rung}"


def parse_trial_variant(variant):
    """(trial, rung, repeat) of a trial's variant name, or None for any other variant."""
    match = TRIAL_VARIANT.fullmatch(variant)
    return (int(match[2]), int(match[3]), int(match[1] or 0)) if match else None


def trial_name(plan, trial, rung):
    """A trial's variant: repeat 0's names as before, `rep<r>-` before a later repeat's, `async-` before an
    asynchronous search's (its trial 7 is not the synchronous search's). The baseline recipe (trial 1) is the same
    experiment in every search, so it keeps one name: trained once."""
    if trial == plan.baseline_trial():
        return trial_variant(trial, rung)
    name = f"async-{trial_variant(trial, rung)}" if plan.asynchronous else trial_variant(trial, rung)
    return f"rep{plan.repeat}-{name}" if plan.repeat else name


def baseline_entry(plan, rung):
    """The baseline recipe's trial at `rung`, as any repeat's record holds it (it needs no record to be known)."""
    return {"trial": 1, "rung": rung, "epochs": plan.rungs[rung].epochs, "settings": dict(plan.baseline),
            "parent": trial_variant(1, rung - 1) if rung else None}


def step_trials(plan, step, record):
    """The trials `step` trains: [{trial, rung, epochs, settings, parent}], from the trials of the steps
    before it and their scores (`record`: those trials, all trained, each with its `score` and `loss`, None if
    it failed, then with `failed`: why): its block of new trials at rung 0, then the promotions that are due."""
    blocks = plan.blocks()
    new = []
    if step < len(blocks):
        first, last = blocks[step]
        epochs = plan.rungs[0].epochs
        new += [{"trial": first + index + 1, "rung": 0, "epochs": epochs, "settings": settings, "parent": None}
                for index, settings in enumerate(new_settings(plan, first, last, record))]
    for rung in plan.rungs[1:]:
        new += promotions(plan, rung, record)
    return new


def new_settings(plan, first, last, record):
    """Settings of trials first+1..last: the method's proposals; for TPE after its startup trials, from the
    scores of the highest rung that has enough of them (modeled_rung), as BOHB does."""
    if plan.method != "tpe" or first < startup_trials(plan.trials, plan.batch):
        made = proposals(plan.method, plan.dimensions, plan.trials, plan.batch, plan.proposal_seed, (),
                         dict(plan.baseline) or None)
        return made[first:last]
    points = modeled_points(record, modeled_rung(plan, record))
    return tpe_proposals(plan.dimensions, points, last - first, plan.proposal_seed)


def modeled_points(record, rung):
    """(settings, score) of `rung`'s trials for TPE: a diverged trial at the worst score (TPE learns it is a bad
    region); a trial that failed otherwise (out of memory, a crash) says nothing of its accuracy and is left
    out, as Optuna's samplers leave out a FAIL trial."""
    return [(trial["settings"], worst_if_none(trial.get("score"))) for trial in record
            if trial["rung"] == rung and (trial.get("score") is not None or diverged(trial))]


def modeled_rung(plan, record):
    """The highest rung with at least d + 1 modeled trials (d: the searched settings; BOHB's default
    min_points_in_model), whose scores TPE then models: longer training tells good recipes from bad better
    than rung 0's few epochs. Rung 0 otherwise."""
    enough = len(plan.dimensions) + 1
    counts = [len(modeled_points(record, rung.index)) for rung in plan.rungs]
    return max((index for index, count in enumerate(counts) if count >= enough), default=0)


def diverged(trial):
    """Whether a trial failed by a NaN loss (records before `failed` existed: any trial without a score)."""
    return trial.get("diverged", trial.get("score") is None and not trial.get("failed"))


def rung_final(plan, index, record):
    """Whether rung `index` gets no more trials: rung 0 once every trial has been proposed (and, `record` holding
    only trained trials, trained); a higher rung once the one below is final and has promoted all it will."""
    if index == 0:
        return sum(trial["rung"] == 0 for trial in record) >= plan.trials
    return rung_final(plan, index - 1, record) and not promotions(plan, plan.rungs[index], record)


def check_rungs(plan, record):
    """Raises when every trial of a rung that gets no more trials failed: the search cannot go on."""
    for rung in plan.rungs:
        trials = [trial for trial in record if trial["rung"] == rung.index]
        if trials and all(trial["score"] is None for trial in trials) and rung_final(plan, rung.index, record):
            reasons = sorted({trial.get("failed") or "diverged: the loss became NaN" for trial in trials})
            raise ValueError(f"every trial of rung {rung.index} ({len(trials)}) failed: {'; '.join(reasons)}. "
                             "The search cannot choose a recipe; narrow the search space (a lower learning-rate "
                             "range, smaller batches) or give training more memory (resources.train_mem_mb)")


def promotions(plan, rung, record):
    """The trials that go on to `rung` now: successive halving promotes the best rung.trials of the rung
    below once it is complete; a TPE search promotes as soon as the rung below has finished enough trials,
    asynchronous successive halving's rule (Li et al. 2020), capped at the same share (rung.trials of the
    trials below, in proportion to how many finished, until the rung below is final), so the budget is plain halving's and later TPE batches
    can model the higher rung. The baseline recipe (trial 1) joins the last rung even when not among the best,
    one run more, so the chosen recipe is never worse than the default on validation. A failed trial is never
    promoted: a rung may then hold fewer trials than planned."""
    below_rung = plan.rungs[rung.index - 1]
    below = {trial["trial"]: trial for trial in record if trial["rung"] == below_rung.index}
    already = {trial["trial"] for trial in record if trial["rung"] == rung.index}
    complete = rung_final(plan, below_rung.index, record)
    room = (rung.trials if complete else len(below) * rung.trials // below_rung.trials) - len(already)
    # a trial that failed (out of memory, a crash, a NaN loss) goes no further
    candidates = {number: trial["score"] for number, trial in below.items()
                  if number not in already and trial["score"] is not None}
    chosen = promoted(candidates, min(max(room, 0), len(candidates)), losses(below)) if candidates else []
    baseline = plan.baseline_trial()
    if rung.index == plan.rungs[-1].index and complete and baseline in candidates and baseline not in chosen:
        chosen = sorted([*chosen, baseline])
    return [{"trial": number, "rung": rung.index, "epochs": rung.epochs, "settings": below[number]["settings"],
             "parent": trial_name(plan, number, below_rung.index)} for number in chosen]


def losses(trials):
    """{trial: validation loss} of scored trials (records before losses were kept have none: no tie-break)."""
    return {number: trial["loss"] for number, trial in trials.items() if trial.get("loss") is not None}


def worst_if_none(score):
    """A failed trial (no score) ranks below every trained one."""
    return -1.0 if score is None else score


def chosen_trial(plan, record):
    """The trial of the last rung with the best validation score (ties: the lower validation loss, then the
    earlier trial)."""
    final = {trial["trial"]: trial for trial in record if trial["rung"] == plan.rungs[-1].index}
    (winner,) = promoted({number: worst_if_none(trial["score"]) for number, trial in final.items()}, 1, losses(final))
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
