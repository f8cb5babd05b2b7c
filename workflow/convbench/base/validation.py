"""Config checks with short, readable messages, run while Snakemake parses the workflow."""

import difflib

from .config import sweep_variants


def validate_config(config, schema, fill_defaults):
    """Check the whole config against the schema with one short sentence per problem (the key,
    the bad value, what is allowed, the closest key), then let `fill_defaults` (Snakemake's
    validate) add the schema's defaults, and turn integral numbers of integer settings (epochs:
    3.0) into integers. Raises ValueError; never dumps the schema."""
    import jsonschema

    check_variants(config, schema["$defs"]["training_settings"])
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        raise ValueError(explain(error, noun="key"))
    fill_defaults(config)
    exact_integers(config, schema, schema)


def exact_integers(value, schema, root):
    """JSON Schema counts 3.0 as an integer; Python's range() does not. Convert in place."""
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    for part in schema.get("allOf", []):
        exact_integers(value, part, root)
    if isinstance(value, dict):
        for key in value:
            sub = schema.get("properties", {}).get(key, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                if _is_integer(sub, root) and isinstance(value[key], float):
                    value[key] = int(value[key])
                else:
                    exact_integers(value[key], sub, root)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            if _is_integer(schema["items"], root) and isinstance(item, float):
                value[index] = int(item)
            else:
                exact_integers(item, schema["items"], root)


def _is_integer(schema, root):
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema.get("type") == "integer"


def check_variants(config, settings_schema):
    """Stop with the variant's name, the key and the allowed values when a variant or sweep value
    is not a valid training setting (before Snakemake's validate(), whose message dumps the schema)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(settings_schema)
    sweep = config.get("sweep") or {}
    if not isinstance(sweep, dict) or not all(isinstance(values, list) and values for values in sweep.values()):
        raise ValueError("sweep: give each training setting a non-empty list of values, e.g. "
                         "sweep: {learning_rate: [0.001, 0.0003]}")
    for key, values in sweep.items():
        for value in values:
            if isinstance(value, str) and not VARIANT_NAME_CHARS.issuperset(value):
                raise ValueError(f"sweep: {key}: value {value!r} cannot be part of a folder name; "
                                 "use letters, digits and _ . - + only")
    named = config.get("variants") or {}
    if not isinstance(named, dict):
        raise ValueError("variants: expected named bundles of training settings, e.g. "
                         "variants: {default: {}, low_lr: {learning_rate: 0.0003}}")
    for name, overrides in {**named, **sweep_variants(sweep)}.items():
        where = f"sweep point {name!r}" if name not in named else f"variant {name!r}"
        if name in named and not (VARIANT_NAME_CHARS.issuperset(str(name)) and str(name)):
            raise ValueError(f"variant {name!r}: a variant name becomes a folder name; use letters, digits and _ . - + = , only")
        if not isinstance(overrides, dict):
            raise ValueError(f"{where}: expected training settings, e.g. {{learning_rate: 0.0003}}, got {overrides!r}")
        error = jsonschema.exceptions.best_match(validator.iter_errors(overrides))
        if error is not None:
            raise ValueError(f"{where}: {explain(error)}")


VARIANT_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-+=,")


def explain(error, noun="setting"):
    """One short sentence for a jsonschema error: the key, the bad value, what is allowed."""
    path = ".".join(map(str, error.absolute_path))
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unexpected = sorted(set(error.instance) - set(allowed))
        hints = []
        for key in unexpected:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hints.append(f"{key!r} is not a {noun}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        where = f"in {path}: " if path else ""
        return f"{where}{'; '.join(hints)}; allowed: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"{path}: {error.instance!r} is not allowed; choose from {', '.join(map(str, error.validator_value))}"
    if error.validator == "required":
        return f"{path or 'config'}: {error.message}"
    if error.validator == "minimum" and "x-minimum-why" in error.schema:  # the measured need, say
        return f"{path}: {error.instance} is less than {error.validator_value}: {error.schema['x-minimum-why'].strip()}"
    return f"{path}: {error.message}" if path else error.message


def check_recipe(settings, where):
    """Settings that are valid one by one but not together, in one experiment's effective settings."""
    epochs, schedule = settings["epochs"], settings.get("schedule", "constant")
    if settings.get("optimizer") != "sgd":
        given = [key for key in ("momentum", "nesterov") if settings.get(key) is not None]
        if given:
            raise ValueError(f"{where}: {' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} to optimizer sgd "
                             f"only, not {settings.get('optimizer')}")
    if schedule != "step":
        given = [key for key in ("milestones", "gamma") if settings.get(key) is not None]
        if given:
            raise ValueError(f"{where}: {' and '.join(given)} belong to schedule: step, not {schedule}")
    late = [m for m in settings.get("milestones") or [] if m >= epochs]
    if late:
        raise ValueError(f"{where}: milestones {late} are not before the last epoch ({epochs}); they would never apply")
    warmup = settings.get("warmup_epochs") or 0
    if warmup and schedule == "plateau":
        raise ValueError(f"{where}: warmup_epochs does not combine with schedule: plateau (ReduceLROnPlateau sets the rate itself)")
    if warmup >= epochs:
        raise ValueError(f"{where}: warmup_epochs {warmup} leaves no epoch after the warm-up (epochs: {epochs})")
