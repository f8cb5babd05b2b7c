"""The `search` section's checks, one line each, before any job (Snakemake's parse)."""

import importlib.util

from ..base.validation import explain
from .proposals import OPTUNA_EXTRA
from .halving import epochs_spent
from .search import TUNED_VARIANT, Plan, overrides, parse_trial_variant
from .space import grid_size, parse_space


def search_enabled(config):
    """A study searches when `search.space` names a setting."""
    return bool((config.get("search") or {}).get("space"))


def check_search(config, variants, settings_schema, epochs_of):
    """Raise ValueError (one line) for a search the workflow could not run as asked. `epochs_of(dataset,
    arch)`: the study's epochs for that experiment under the baseline variant (the last rung's budget)."""
    for name in variants:
        if name == TUNED_VARIANT or parse_trial_variant(name):
            raise ValueError(f"variant {name!r}: {TUNED_VARIANT!r} and trial<N>-r<N> name a search's experiments; "
                             "rename the variant")
    if not search_enabled(config):
        return
    search = config["search"]
    dimensions = parse_space(search["space"])
    check_settings(dimensions, settings_schema)
    keys = [dimension.key for dimension in dimensions]
    for swept in config.get("sweep") or {}:
        clash = [key for key in keys if key == swept or key.startswith(swept + ".") or swept.startswith(key + ".")]
        if clash:
            raise ValueError(f"search.space.{clash[0]} and sweep.{swept} set the same training setting; "
                             "search it or sweep it, not both")
    if search["method"] == "tpe" and importlib.util.find_spec("optuna") is None:
        raise ValueError(f"search.method tpe needs Optuna, which is not installed: {OPTUNA_EXTRA}")
    if search["method"] == "grid":
        size = grid_size(dimensions)  # raises for a float range: a grid takes choice and int
        if search["trials"] > size:
            raise ValueError(f"search.trials is {search['trials']} but the grid has {size} points; "
                             f"set trials to {size} at most")
        if search.get("repeats", 1) > 1:
            raise ValueError(f"search.repeats is {search['repeats']}, but a grid proposes the same trials from every "
                             "seed: repeats would add nothing; use method random or tpe, or set repeats to 1")
    halving = search.get("halving")
    if halving and "epochs" in keys:
        raise ValueError("search.space.epochs: successive halving sets each rung's epochs; "
                         "search epochs without `halving`, or drop it from the space")
    if search["seed"] in config["search"]["confirm_seeds"]:
        raise ValueError(f"search.confirm_seeds includes the search's own seed {search['seed']}: the chosen recipe "
                         "must be confirmed on seeds it was not chosen on")
    for dataset in config["datasets"]:
        for arch in config["architectures"]:
            epochs = epochs_of(dataset, arch)
            if halving and halving["min_epochs"] > epochs:
                raise ValueError(f"search.halving.min_epochs is {halving['min_epochs']}, above the {epochs} epochs "
                                 f"{arch} trains on {dataset}; the last rung trains for those epochs")
            plan = Plan.from_config(search, epochs)
            spent, full = epochs_spent(plan.rungs), plan.trials * epochs
            if spent > full:
                raise ValueError(f"search.halving (min_epochs {halving['min_epochs']}, eta {halving.get('eta', 3)}) "
                                 f"spends {spent} trial-epochs for {arch} on {dataset}, {spent / full:.0%} of training "
                                 f"every trial fully ({full}): lower min_epochs or drop halving")


def plan_lines(config, epochs_of):
    """What each search will spend, one line per distinct plan (the architectures sharing it named), and a
    warning line when the architectures of a dataset do not get the same budget."""
    if not search_enabled(config):
        return []
    lines = []
    for dataset in config["datasets"]:
        plans = {}
        for arch in config["architectures"]:
            plans.setdefault(Plan.from_config(config["search"], epochs_of(dataset, arch)), []).append(arch)
        for plan, archs in plans.items():
            rungs = " → ".join(f"{rung.trials}×{rung.epochs}" for rung in plan.rungs)
            spent, full = epochs_spent(plan.rungs), plan.trials * plan.rungs[-1].epochs
            extra = (f", and {plan.rungs[-1].epochs} more where the baseline recipe (trial 1) is not among the last "
                     "rung's" if len(plan.rungs) > 1 else "")
            lines.append(f"search on {dataset} of {', '.join(archs)}: {plan.method}, {plan.trials} trials, rungs "
                         f"{rungs} (trials × epochs): {spent} trial-epochs each{extra}, {spent / full:.0%} of training "
                         f"every trial fully ({full})")
        if config["search"].get("asynchronous"):
            lines.append(f"search on {dataset}: asynchronous, {config['search']['batch']} lanes (ASHA): what it "
                         "proposes depends on the order trials finish in; rungs hold at most the trials above")
        if config["search"].get("repeats", 1) > 1:
            lines.append(f"search on {dataset}: {config['search']['repeats']} repeats of each search (other proposal "
                         f"seeds; the default recipe trains once), {config['search']['repeats']}× the trials above")
        if len(plans) > 1:
            lines.append(f"warning: the architectures on {dataset} do not get the same search budget (their epochs "
                         "differ, e.g. through architecture_options); the report says so beside the comparison")
    return lines


def check_settings(dimensions, settings_schema):
    """Every value a dimension can take is a valid training setting (names the unknown key or bad value)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(settings_schema)
    for dimension in dimensions:
        values = dimension.values if dimension.kind == "choice" else dimension.values[:2]
        for value in values:
            error = jsonschema.exceptions.best_match(validator.iter_errors(overrides({dimension.key: value})))
            if error is not None:
                raise ValueError(f"search.space.{dimension.key}: {explain(error)}")
