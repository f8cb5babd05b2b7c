"""The `search` section's checks, one line each, before any job (Snakemake's parse)."""

import importlib.util

from ..base.validation import explain
from .proposals import OPTUNA_EXTRA
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
        raise ValueError(f"search.method tpe needs Optuna, which is not installed: {OPTUNA_EXTRA} "
                         "(or pip install optuna); random and grid need nothing more")
    if search["method"] == "grid":
        size = grid_size(dimensions)  # raises for a float range: a grid takes choice and int
        if search["trials"] > size:
            raise ValueError(f"search.trials is {search['trials']} but the grid has {size} points; "
                             f"set trials to {size} at most")
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
            Plan.from_config(search, epochs)


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
