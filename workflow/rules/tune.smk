# Tuned comparisons: each architecture's search (config `search`), one step after another, then its chosen
# recipe (variant `tuned`) trained on the confirmation seeds beside the baseline variant.
# Code: workflow/convbench/tune.
from snakemake.exceptions import IncompleteCheckpointException

from convbench.tune.record import lane_trials, read_record
from convbench.tune.search import (NOT_A_TRIAL, TRIAL_VARIANT, TUNED_VARIANT, Plan, baseline_entry, overrides,
                                   parse_trial_variant, trial_overrides)

# The steps' records and the result, search.json; `search.repeats` > 1 adds repeats 1, 2, ... beside it, in
# <arch>-repeat<r> (the wildcard `repeat` is empty for repeat 0: its paths are those searches always had).
SEARCHES = "results/search/{dataset}/{arch}{repeat}"


wildcard_constraints:
    repeat="(|-repeat[1-9][0-9]*)",
    lane=r"\d+",
    step=r"\d+",


# A step reads a few JSON files and proposes settings in a second or two: on a cluster it runs where Snakemake
# runs, not as an sbatch job that would wait in the queue between every batch of trials.
localrules:
    search_step,
    search_lane,
    choose_recipe,



def repeat_path(repeat):
    """The `repeat` wildcard of repeat r: empty for 0, so repeat 0 keeps the paths searches always had."""
    return f"-repeat{repeat}" if repeat else ""


def repeat_of(wildcards):
    return int(wildcards.repeat.rpartition("repeat")[2] or 0)


@functools.cache
def search_plan(dataset, arch, repeat=0):
    """The search of one architecture on one dataset; its last rung trains for the baseline's epochs, and its
    trial 1 is the baseline's recipe. Repeat r proposes from its own seed."""
    settings = experiment_settings(config, dataset, arch, VARIANTS[BASELINE])
    return Plan.from_config(config["search"], settings["epochs"], baseline=settings).for_repeat(repeat)


def search_steps(wildcards):
    return dict(search_plan(wildcards.dataset, wildcards.arch, repeat_of(wildcards)).describe())


def step_record(dataset, arch, step, repeat=0):
    """The record step `step` wrote (waits for it: a checkpoint)."""
    return checkpoints.search_step.get(dataset=dataset, arch=arch, step=step, repeat=repeat_path(repeat)).output[0]


def chosen_record(dataset, arch, repeat=0):
    """search.json of a search (waits for it: a checkpoint)."""
    return checkpoints.choose_recipe.get(dataset=dataset, arch=arch, repeat=repeat_path(repeat)).output[0]


def last_step_inputs(wildcards, step):
    """What step `step` needs of the one before: its record and its trials' trained experiments."""
    if step == 0:
        return []
    record = step_record(wildcards.dataset, wildcards.arch, step - 1, repeat_of(wildcards))
    trials = [trial for trial in read_record(record)["trials"] if trial_step(wildcards, trial) == step - 1]
    return [record, *(f"{trial['experiment']}/{name}" for trial in trials for name in ("train_meta.json", "history.csv"))]


def trial_step(wildcards, trial):
    """The step that proposed a trial: the record says (records before promotions moved say nothing: a rung-0
    trial's step follows from its number, a promotion to rung r came r steps after the last block)."""
    if "step" in trial:
        return trial["step"]
    plan = search_plan(wildcards.dataset, wildcards.arch)
    return plan.step_of(trial["trial"]) if trial["rung"] == 0 else len(plan.blocks()) + trial["rung"] - 1


def defining_record(dataset, arch, trial, rung, repeat):
    """The record of the step that proposed (trial, rung): a rung-0 trial's step follows from its number; a
    promotion's from the scores, so the steps are read in order until one holds it (each waits for its step).
    The baseline recipe (trial 1) needs no record: it is the same experiment in every repeat."""
    plan = search_plan(dataset, arch, repeat)
    if trial == plan.baseline_trial():
        return baseline_entry(plan, rung)
    if plan.asynchronous:  # a lane step proposed it; the lane asks for its training only after that
        search_dir = SEARCHES.format(dataset=dataset, arch=arch, repeat=repeat_path(repeat))
        found = [entry for entry in lane_trials(search_dir, plan) if (entry["trial"], entry["rung"]) == (trial, rung)]
        if found:
            return found[0]
        raise ValueError(f"{dataset}/{arch}: no lane of the asynchronous search (repeat {repeat}) has proposed "
                         f"trial {trial} at rung {rung} yet")
    first = plan.step_of(trial) if rung == 0 else 1
    for step in range(first, plan.step_count()):
        record = read_record(step_record(dataset, arch, step, repeat))
        found = [entry for entry in record["trials"] if (entry["trial"], entry["rung"]) == (trial, rung)]
        if found:
            return found[0]
    raise ValueError(f"{dataset}/{arch}: no step of the search (repeat {repeat}) proposes trial {trial} at rung {rung}")


def lane_inputs(wildcards):
    """What a lane's step needs of the lane's step before: its record and its trial's trained experiment."""
    step = int(wildcards.step)
    if step == 0:
        return []
    record = checkpoints.search_lane.get(dataset=wildcards.dataset, arch=wildcards.arch, repeat=wildcards.repeat,
                                         lane=wildcards.lane, step=step - 1).output[0]
    trial = read_record(record)["trial"]
    if trial is None:
        raise ValueError(f"lane {wildcards.lane} of {SEARCHES.format(**wildcards)} ended at step {step - 1}")
    return [record, *(f"{trial['experiment']}/{name}" for name in ("train_meta.json", "history.csv"))]


def lanes_ended(wildcards):
    """Every lane's last record, the one that proposes nothing. A lane not there yet contributes the step it waits
    for, as the checkpoint target Snakemake's own exception would give: every lane advances at once (raising for
    the first would run the lanes one after another)."""
    plan = search_plan(wildcards.dataset, wildcards.arch, repeat_of(wildcards))
    inputs = []
    for lane in range(plan.batch):
        step = 0
        while True:
            try:
                record = checkpoints.search_lane.get(dataset=wildcards.dataset, arch=wildcards.arch,
                                                     repeat=wildcards.repeat, lane=lane, step=step).output[0]
            except IncompleteCheckpointException as waiting:
                inputs.append(waiting.targetfile)
                break
            if read_record(record)["trial"] is None:
                inputs.append(record)
                break
            step += 1
    return inputs


def search_finished(wildcards):
    """What the choice needs: the last step's record and trials, or every lane's last record."""
    plan = search_plan(wildcards.dataset, wildcards.arch, repeat_of(wildcards))
    return lanes_ended(wildcards) if plan.asynchronous else last_step_inputs(wildcards, plan.step_count())


def search_variant_overrides(wildcards):
    """A trial's changes (read from the step that proposed it) or the chosen recipe's (from search.json)."""
    parsed = parse_trial_variant(wildcards.variant)
    plan = search_plan(wildcards.dataset, wildcards.arch)
    if parsed:
        return trial_overrides(VARIANTS[BASELINE], defining_record(wildcards.dataset, wildcards.arch, *parsed), plan)
    if wildcards.variant == TUNED_VARIANT:
        chosen = read_record(chosen_record(wildcards.dataset, wildcards.arch))["chosen"]
        return {**merge_settings(VARIANTS[BASELINE], overrides(chosen["settings"])),
                "search": {"method": plan.method, "seed": plan.seed, "trial": chosen["trial"], "rung": None,
                           "parent": chosen["variant"]}}
    raise ValueError(f"unknown variant {wildcards.variant!r}; the study's: {', '.join(VARIANTS)}")


def search_gate(wildcards):
    """No file: orders a trial's or the chosen recipe's training after the step that defines it, and lets
    Snakemake read its settings then. (A file input would retrain every trial when the record is rewritten.)"""
    if wildcards.variant not in VARIANTS:
        search_variant_overrides(wildcards)  # raises until that step's record exists
    return []


def tuned_experiments():
    """The chosen recipes on the confirmation seeds (waits for every search to end)."""
    if not SEARCH:
        return ()
    for dataset in config["datasets"]:
        for arch in config["architectures"]:
            chosen_record(dataset, arch)
    return tuple({"dataset": dataset, "arch": arch, "variant": TUNED_VARIANT, "seed": seed}
                 for dataset in config["datasets"] for arch in config["architectures"]
                 for seed in config["search"]["confirm_seeds"])


def search_records(wildcards):
    """Every search's search.json, repeats included (the report's budget curves)."""
    if not SEARCH:
        return []
    return expand(f"{SEARCHES}/search.json", dataset=config["datasets"], arch=config["architectures"],
                  repeat=[repeat_path(repeat) for repeat in range(config["search"]["repeats"])])


def search_benchmarks():
    """The benchmark files of every search's jobs, repeats included: its steps, its trials' training (the baseline
    recipe's once), its choice (for the report's wall-time table; called once the searches ended)."""
    jobs, trained = [], set()
    for dataset in config["datasets"] if SEARCH else []:
        for arch in config["architectures"]:
            for repeat in range(config["search"]["repeats"]):
                plan = search_plan(dataset, arch, repeat)
                values = {"dataset": dataset, "arch": arch, "repeat": repeat_path(repeat)}
                record = read_record(chosen_record(dataset, arch, repeat))
                if plan.asynchronous:
                    jobs += [(rules.search_lane, {**values, "lane": lane, "step": step})
                             for lane, steps in enumerate(record["lanes"]) for step in range(steps)]
                else:
                    jobs += [(rules.search_step, {**values, "step": step}) for step in range(plan.step_count())]
                jobs.append((rules.choose_recipe, values))
                for trial in record["trials"]:
                    if (dataset, arch, trial["variant"]) not in trained:
                        trained.add((dataset, arch, trial["variant"]))
                        jobs.append((rules.train_trial, {"dataset": dataset, "arch": arch, "variant": trial["variant"],
                                                         "seed": plan.seed}))
    return jobs


# One step of one architecture's search: scores the trials of the step before (validation only) and
# proposes the next ones. A checkpoint: which trials train next is known only once it ran.
checkpoint search_step:
    input:
        previous=lambda wildcards: last_step_inputs(wildcards, int(wildcards.step)),
        # the same step of the repeats before: a proposal one of them made is their experiment, not trained again
        earlier_repeats=lambda wildcards: [f"results/search/{wildcards.dataset}/{wildcards.arch}{repeat_path(repeat)}/"
                                           f"step{wildcards.step}.json" for repeat in range(repeat_of(wildcards))],
    output:
        f"{SEARCHES}/step{{step}}.json",
    params:
        search=search_steps,
        baseline=lambda wildcards: VARIANTS[BASELINE],
    log:
        f"results/logs/search/{{dataset}}/{{arch}}{{repeat}}/step{{step}}.log",
    benchmark:
        f"results/benchmarks/search/{{dataset}}/{{arch}}{{repeat}}/step{{step}}.tsv"
    threads: 1
    resources:
        mem_mb=asked_mb("search_step", 1000),
        runtime=10,
    conda:
        "../../envs/tune.yaml"
    script:
        "../scripts/search_step.py"


# One step of one lane of an asynchronous search (search.asynchronous): proposes the lane's next trial from
# every trial finished so far, by any lane (convbench.tune.asynchronous), or ends the lane. A checkpoint.
checkpoint search_lane:
    input:
        previous=lane_inputs,
    output:
        f"{SEARCHES}/lane{{lane}}/step{{step}}.json",
    params:
        search=search_steps,
    log:
        f"results/logs/search/{{dataset}}/{{arch}}{{repeat}}/lane{{lane}}/step{{step}}.log",
    benchmark:
        f"results/benchmarks/search/{{dataset}}/{{arch}}{{repeat}}/lane{{lane}}/step{{step}}.tsv"
    threads: 1
    resources:
        mem_mb=asked_mb("search_step", 1000),
        runtime=10,
    conda:
        "../../envs/tune.yaml"
    script:
        "../scripts/search_lane_step.py"


# The search's result: the best trial of the last rung by validation accuracy, and every trial's record.
checkpoint choose_recipe:
    input:
        last=search_finished,
    output:
        f"{SEARCHES}/search.json",
    params:
        search=search_steps,
        baseline=BASELINE,
    log:
        f"results/logs/search/{{dataset}}/{{arch}}{{repeat}}/choose.log",
    benchmark:
        f"results/benchmarks/search/{{dataset}}/{{arch}}{{repeat}}/choose.tsv"
    threads: 1
    resources:
        mem_mb=asked_mb("choose_recipe", 1000),
        runtime=10,
    conda:
        "../../envs/tune.yaml"
    script:
        "../scripts/choose_recipe.py"
