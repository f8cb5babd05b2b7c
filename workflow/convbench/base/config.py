"""Study configuration helpers that run while Snakemake parses the workflow (no TensorFlow here)."""

import itertools

# Keys whose values are text even when they look like numbers (class "0", a hash "1234e5...").
TEXT_KEYS = {"class_names", "sha256", "name", "url", "mirrors", "path", "test_path", "description"}


# Config sections that say how jobs run, not what they compute: changing them reruns no job's result
# (the report shows the config in effect without them).
RUN_ONLY_SECTIONS = ("resources", "checkpoints", "storage")  # storage: where prepared data lives


def results_config(config):
    """The config without RUN_ONLY_SECTIONS: what the report shows, so asking for a GPU or checkpointing
    more often does not rebuild it."""
    return {key: value for key, value in config.items() if key not in RUN_ONLY_SECTIONS}


def coerce_cli_scalars(value):
    """Turn numbers and booleans that arrived as strings back into numbers and booleans.

    `snakemake --config 'training={epochs: 5}'` reads nested values with YAML's BaseLoader, so
    they arrive as the string '5'; without this the schema would reject every nested override.
    """
    if isinstance(value, dict):
        return {key: item if key in TEXT_KEYS else coerce_cli_scalars(item) for key, item in value.items()}
    if isinstance(value, list):
        return [coerce_cli_scalars(item) for item in value]
    if not isinstance(value, str):
        return value
    for parse in (int, float):
        try:
            return parse(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def merge_settings(defaults, overrides):
    """`defaults` updated by `overrides`, nested sections merged key by key rather than replaced."""
    merged = dict(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = merge_settings(merged[key], value)
        merged[key] = value
    return merged


def dataset_settings(config, dataset):
    """Training settings of a dataset: `training`, then its `dataset_options`."""
    return merge_settings(config["training"], config["dataset_options"].get(dataset, {}))


def experiment_settings(config, dataset, architecture, variant_overrides=None):
    """Training settings of one experiment: `training`, then `dataset_options`, then
    `architecture_options`, then the variant's overrides (the variant wins)."""
    settings = merge_settings(dataset_settings(config, dataset), config["architecture_options"].get(architecture, {}))
    return merge_settings(settings, variant_overrides or {})


def augmentation_on(augmentation):
    """Whether any augmentation knob is set (fill_mode or single_affine alone change nothing; a crop
    needs padding)."""
    knobs = {key: value for key, value in (augmentation or {}).items() if key not in ("fill_mode", "single_affine")}
    knobs["random_crop"] = (knobs.get("random_crop") or {}).get("padding", 0)
    return any(knobs.values())


# ---------------------------------------------------------------- variants and sweeps


def study_variants(config):
    """{name: overrides} of every variant of the study, the baseline first (baseline_variant), then
    the named `variants` in their order, then one per point of the `sweep` grid (union, not cross
    product), named by its values."""
    variants = dict(config.get("variants") or {"default": {}})
    for name, overrides in sweep_variants(config.get("sweep") or {}).items():
        if name in variants:
            raise ValueError(f"sweep: its variant {name!r} has the name of a variant under `variants`; rename that one")
        variants[name] = overrides
    baseline = baseline_variant(config.get("baseline"), variants)
    others = {name: overrides for name, overrides in variants.items() if name != baseline}
    return {baseline: variants[baseline], **others}


def baseline_variant(named, variants):
    """The variant the others are compared against: `baseline` when the config names one, else the one
    called default, else the first. Not simply the first: a variant added with --config comes before
    config.yaml's (Snakemake merges the file into the command line's values)."""
    if named is None:
        return "default" if "default" in variants else next(iter(variants))
    if named not in variants:
        raise ValueError(f"baseline: {named!r} is not a variant of the study; choose from {', '.join(variants)}")
    return named


def sweep_variants(sweep):
    """The grid's points in order (last key fastest), e.g. {"learning_rate=0.001,batch_size=64":
    {"learning_rate": 0.001, "batch_size": 64}}; dotted keys reach nested settings
    (`augmentation.rotation_range`)."""
    keys = list(sweep)
    points = {}
    if not keys:  # the product of nothing is one empty point, not none
        return points
    for values in itertools.product(*(sweep[key] for key in keys)):
        name = ",".join(f"{key}={format_value(value)}" for key, value in zip(keys, values))
        overrides = {}
        for key, value in zip(keys, values):
            overrides = merge_settings(overrides, nested(key, value))
        points[name] = overrides
    return points


def format_value(value):
    """A setting's value as it appears in a variant name: 0.0003, 1e-05, 64, true, plateau."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def nested(dotted_key, value):
    """"augmentation.rotation_range", 10 -> {"augmentation": {"rotation_range": 10}}."""
    for key in reversed(dotted_key.split(".")):
        value = {key: value}
    return value


def flatten(settings, prefix=""):
    """{"augmentation": {"rotation_range": 10}} -> {"augmentation.rotation_range": 10}."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def varied_settings(variants):
    """Dotted keys of every setting some variant changes, in first-seen order."""
    return list(dict.fromkeys(key for overrides in variants.values() for key in flatten(overrides)))


def lookup(settings, dotted_key):
    for key in dotted_key.split("."):
        settings = settings.get(key) if isinstance(settings, dict) else None
    return settings
