"""The `search` section's bad input: one line naming the key and the fix, before any job."""

import importlib.util
import subprocess
import sys

import pytest
import yaml
from conftest import PROJECT, copy_workflow
from convbench.base.config import experiment_settings, study_variants
from convbench.base.validation import validate_config
from convbench.tune.checks import check_search
from snakemake.utils import validate

SCHEMA = PROJECT / "workflow" / "schemas" / "config.schema.yaml"
LR = {"learning_rate": {"log_uniform": [0.0001, 0.01]}}


def checked(search, **extra):
    """The study's config through the schema and the search checks, as common.smk runs them."""
    schema = yaml.safe_load(SCHEMA.read_text())
    config = {"datasets": ["digits"], "architectures": ["simple_cnn"], "seeds": [1], "training": {"epochs": 4},
              "search": search, **extra}
    validate_config(config, schema, lambda values: validate(values, str(SCHEMA)))
    variants = study_variants(config)
    check_search(config, variants, schema["$defs"]["training_settings"],
                 lambda dataset, arch: experiment_settings(config, dataset, arch, variants[next(iter(variants))])["epochs"])
    return config


def test_a_valid_search_fills_its_defaults():
    config = checked({"space": LR})
    assert config["search"] == {"space": LR, "method": "random", "trials": 16, "batch": 4, "seed": 0, "repeats": 1,
                                "halving": None, "confirm_seeds": [101, 102, 103]}


@pytest.mark.parametrize("search, extra, words", [
    ({"space": {"learnin_rate": {"uniform": [0.1, 0.2]}}}, {}, "search.space.learnin_rate: 'learnin_rate' is not a setting (did you mean 'learning_rate'?)"),
    ({"space": {"optimizer": {"choice": ["adam", "rmsprop"]}}}, {}, "search.space.optimizer: optimizer: 'rmsprop' is not allowed"),
    ({"space": {"learning_rate": {"uniform": [0.01, 0.001]}}}, {}, "empty or inverted"),
    ({"space": {"learning_rate": {"uniform": [0.01, 0.01]}}}, {}, "empty or inverted"),
    ({"space": {"learning_rate": {"log_uniform": [0, 0.01]}}}, {}, "a log_uniform range must be above 0"),
    ({"space": LR, "trials": 0}, {}, "search.trials: 0 is less than the minimum of 1"),
    ({"space": LR, "halving": {"min_epochs": 1, "eta": 1}}, {}, "search.halving.eta: 1 is less than the minimum of 2"),
    ({"space": LR, "halving": {"min_epochs": 5}}, {}, "search.halving.min_epochs is 5, above the 4 epochs simple_cnn trains on digits"),
    ({"space": LR}, {"sweep": {"learning_rate": [0.1, 0.01]}}, "search.space.learning_rate and sweep.learning_rate set the same"),
    ({"space": {"augmentation.rotation_range": {"int": [0, 10]}}}, {"sweep": {"augmentation.rotation_range": [0, 10]}},
     "search.space.augmentation.rotation_range and sweep.augmentation.rotation_range set the same"),
    ({"space": LR, "seed": 101}, {}, "search.confirm_seeds includes the search's own seed 101"),
    ({"space": LR, "method": "grid"}, {}, "a grid search takes choice or int, not log_uniform"),
    ({"space": {"batch_size": {"choice": [32, 64]}}, "method": "grid", "trials": 3}, {}, "the grid has 2 points"),
    ({"space": {"batch_size": {"choice": [32, 64]}}, "method": "grid", "trials": 2, "repeats": 3}, {},
     "search.repeats is 3, but a grid proposes the same trials from every seed"),
    ({"space": {"epochs": {"int": [1, 3]}}, "halving": {"min_epochs": 1}}, {}, "halving sets each rung's epochs"),
    ({"space": LR}, {"variants": {"default": {}, "tuned": {}}}, "variant 'tuned': 'tuned' and trial<N>-r<N> name"),
    ({"space": LR, "trials": 9, "halving": {"min_epochs": 3, "eta": 3}}, {},
     "spends 39 trial-epochs for simple_cnn on digits, 108% of training every trial fully (36): lower min_epochs"),
], ids=["unknown-setting", "bad-choice", "inverted", "empty", "log-zero", "trials", "eta", "min-epochs", "sweep-clash",
        "sweep-dotted-clash", "confirm-seed", "grid-float", "grid-size", "grid-repeats", "halving-epochs", "reserved-variant",
        "halving-costs-more"])
def test_bad_search_is_one_line_naming_the_key(search, extra, words):
    with pytest.raises(ValueError) as error:
        checked(search, **extra)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_tpe_without_optuna_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "optuna" else real(name, *args))
    with pytest.raises(ValueError, match=r"search.method tpe needs Optuna, which is not installed: pip install optuna"):
        checked({"space": LR, "method": "tpe"})


@pytest.mark.slow  # starts Snakemake
def test_snakemake_prints_the_one_line_before_any_job(tmp_path):
    copy_workflow(tmp_path)
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--config",
                             "search={space: {learning_rate: {log_uniform: [0, 0.1]}}}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Error in the config: search.space.learning_rate: a log_uniform range" in output
    assert "Traceback" not in output and not (tmp_path / "results").exists()


def test_each_search_plan_is_printed_and_unequal_budgets_warned():
    from convbench.tune.checks import plan_lines

    config = checked({"space": LR, "trials": 9, "halving": {"min_epochs": 1, "eta": 3}},
                     architectures=["simple_cnn", "lenet5"], architecture_options={"lenet5": {"epochs": 9}})
    variants = study_variants(config)
    lines = plan_lines(config, lambda dataset, arch: experiment_settings(config, dataset, arch,
                                                                           variants[next(iter(variants))])["epochs"])
    assert lines[0] == ("search on digits of simple_cnn: random, 9 trials, rungs 9×1 → 3×3 → 1×4 (trials × epochs): "
                        "22 trial-epochs each, and 4 more where the baseline recipe (trial 1) is not among the last "
                        "rung's, 61% of training every trial fully (36)")
    assert lines[1].startswith("search on digits of lenet5: random, 9 trials, rungs 9×1 → 3×3 → 1×9")
    assert lines[2].startswith("warning: the architectures on digits do not get the same search budget")
