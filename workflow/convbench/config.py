"""Study configuration helpers that run while Snakemake parses the workflow (no TensorFlow here)."""


# Keys whose values are text even when they look like numbers (class "0", a hash "1234e5...").
TEXT_KEYS = {"class_names", "sha256", "name", "url", "mirrors", "path", "test_path", "description"}


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


def experiment_settings(config, dataset, architecture):
    """Training settings of one experiment: `training`, then `dataset_options`, then `architecture_options`."""
    return merge_settings(dataset_settings(config, dataset), config["architecture_options"].get(architecture, {}))
