"""A search's record on disk: each step's file lists every trial so far, with the validation score of
those already trained, and the search's final file (search.json) adds the chosen trial. A trial's score
is read from its own experiment: the validation accuracy of the weights its model.keras holds."""

import json
from pathlib import Path

import pandas as pd

from ..base.atomic import taking_turns, write_json
from .asynchronous import lane_proposal
from .search import TUNED_VARIANT, check_rungs, chosen_trial, step_trials, trial_name

SCORE = "val_accuracy"  # what selection maximises: validation, never test
TIE_BREAK = "val_loss"  # then what it minimises among equal scores


def trial_result(experiment):
    """{score, loss}: the validation accuracy and loss of a trained trial's saved weights (the epoch they come
    from, which early stopping may have restored); the loss breaks ties, since on a small validation split
    many trials share an accuracy. A trial that failed scores None and says why (`failed`; `diverged` when its
    loss became NaN)."""
    meta = json.loads((Path(experiment) / "train_meta.json").read_text())
    if meta.get("failed"):
        return {"score": None, "loss": None, "failed": meta["failed"]}
    if meta.get("diverged"):
        return {"score": None, "loss": None, "failed": "diverged: the loss became NaN", "diverged": True}
    epoch = pd.read_csv(Path(experiment) / "history.csv").iloc[meta["weights_from_epoch"] - 1]
    return {"score": float(epoch[SCORE]), "loss": float(epoch[TIE_BREAK])}


def experiment_folder(dataset, arch, variant, seed):
    return f"results/experiments/{dataset}/{arch}/{variant}/seed{seed}"


def scored(record):
    """The record with every trained trial's score read (trials of the step before have none yet)."""
    return [trial if "score" in trial else {**trial, **trial_result(trial["experiment"])} for trial in record]


def run_step(plan, step, previous, output, dataset, arch, earlier_repeats=()):
    """Step `step` of the search: score the previous step's trials, propose this step's, write the record.
    `earlier_repeats`: the same step's records of the repeats before this one (search.repeats); a trial they
    proposed with the same settings and epochs is that trial's experiment, not trained again."""
    record = scored(json.loads(Path(previous).read_text())["trials"]) if step else []
    check_rungs(plan, record)
    reusable = {trial_key(trial): trial for path in earlier_repeats for trial in read_record(path)["trials"]}
    variants = {(trial["trial"], trial["rung"]): trial["variant"] for trial in record}
    new = []
    for trial in step_trials(plan, step, record):
        same = reusable.get(trial_key(trial))
        variant = same["variant"] if same else trial_name(plan, trial["trial"], trial["rung"])
        if trial["parent"]:  # the experiment the trial was promoted from, wherever it trained
            trial = {**trial, "parent": variants[(trial["trial"], trial["rung"] - 1)]}
        new.append({**trial, "step": step, "variant": variant,
                    "experiment": same["experiment"] if same else experiment_folder(dataset, arch, variant, plan.seed)})
        variants[(trial["trial"], trial["rung"])] = variant
    write_json(output, {"dataset": dataset, "architecture": arch, "step": step, "plan": plan.describe(),
                        "trials": record + new})
    return new


def trial_key(trial):
    """What makes two trials one experiment: the same settings at the same epochs (every trial trains with the
    search seed)."""
    return json.dumps(trial["settings"], sort_keys=True), trial["epochs"]


def choose(plan, trials, output, dataset, arch, baseline, lanes=None):
    """The search's result: every trial (`trials`: the last step's record, or every lane's trials) with its score,
    and the chosen one (the best of the last rung). `lanes`: an asynchronous search's steps per lane."""
    record = scored(trials)
    winner = chosen_trial(plan, record)
    if winner["score"] is None:
        check_rungs(plan, record)  # raises, naming why they failed
        raise ValueError(f"no trial of {arch}'s last rung on {dataset} trained")
    write_json(output, {
        "dataset": dataset, "architecture": arch, "plan": plan.describe(), "baseline": baseline,
        "confirmed_as": TUNED_VARIANT,  # the chosen recipe's variant on the confirmation seeds
        "epochs_spent": sum(trial["epochs"] for trial in record), "trials": record,  # the baseline's extra run too
        **({"lanes": lanes} if lanes else {}),
        "chosen": {"trial": winner["trial"], "settings": winner["settings"], "validation_accuracy": winner["score"],
                   "variant": winner["variant"]},
    })
    return winner


def read_record(path):
    return json.loads(Path(path).read_text())


def lane_records(search_dir, plan):
    """Every lane step's record the asynchronous search of `plan` has written so far, in (lane, step) order. Records
    of another plan (`trials` or the space changed since) are left out: Snakemake reruns their steps as it
    reaches them (their params changed), and until then they are not this search's."""
    described = json.loads(json.dumps(plan.describe()))  # as a record holds it
    paths = sorted(Path(search_dir).glob("lane*/step*.json"), key=lambda path: (int(path.parent.name[4:]),
                                                                                int(path.stem[4:])))
    return [record for record in map(read_record, paths) if record["plan"] == described]


def lane_trials(search_dir, plan):
    """Every trial the asynchronous search of `plan` has proposed so far (trial order within each rung)."""
    trials = [record["trial"] for record in lane_records(search_dir, plan) if record["trial"]]
    return sorted(trials, key=lambda trial: (trial["rung"], trial["trial"]))


def trained(experiment):
    """Whether a trial's experiment has finished: both its outputs written (each is written whole)."""
    return all((Path(experiment) / name).exists() for name in ("train_meta.json", "history.csv"))


def run_lane_step(plan, lane, step, output, dataset, arch):
    """Step `step` of lane `lane` of an asynchronous search: read every trial proposed so far and the scores of
    those finished, propose this lane's next trial (or end the lane: trial None), and write the record. Lanes
    take turns (a lock beside their records), so two lanes never propose the same trial."""
    search_dir = Path(output).parent.parent
    with taking_turns(search_dir / "lanes.lock"):
        proposed = lane_trials(search_dir, plan)
        finished = [{**trial, **trial_result(trial["experiment"])} for trial in proposed if trained(trial["experiment"])]
        check_rungs(plan, finished)
        trial = lane_proposal(plan, proposed, finished)
        if trial:
            variant = trial_name(plan, trial["trial"], trial["rung"])
            trial = {**trial, "lane": lane, "step": step, "variant": variant,
                     "experiment": experiment_folder(dataset, arch, variant, plan.seed)}
        done = {trial["variant"] for trial in finished}
        write_json(output, {"dataset": dataset, "architecture": arch, "lane": lane, "step": step,
                            "plan": plan.describe(), "trial": trial,
                            # what the proposal saw: why a fresh run that finishes trials in another order differs
                            "saw_finished": {trial["variant"]: trial["score"] for trial in finished},
                            "saw_training": [trial["variant"] for trial in proposed if trial["variant"] not in done]})
    return trial


def choose_asynchronous(plan, search_dir, output, dataset, arch, baseline):
    """choose() for an asynchronous search, once every lane has ended: every lane's trials, and its steps."""
    records = lane_records(search_dir, plan)
    lanes = [sum(record["lane"] == lane for record in records) for lane in range(plan.batch)]
    return choose(plan, lane_trials(search_dir, plan), output, dataset, arch, baseline, lanes=lanes)
