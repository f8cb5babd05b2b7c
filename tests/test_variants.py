"""Variants and sweeps: resolution order, sweep expansion and naming, bad input, report statistics."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import PROJECT, copy_workflow
from convbench.base.config import experiment_settings, flatten, study_variants, sweep_variants, varied_settings
from convbench.base.validation import check_variants
from convbench.report.confidence import style_variant_effects, variant_effects
from snakemake.utils import validate

SCHEMA = PROJECT / "workflow" / "schemas" / "config.schema.yaml"
TRAINING_SCHEMA = yaml.safe_load(SCHEMA.read_text())["$defs"]["training_settings"]


def study(**extra):
    config = {"datasets": ["digits", "mnist"], "architectures": ["simple_cnn", "bn_cnn"], "seeds": [1], **extra}
    check_variants(config, TRAINING_SCHEMA)
    validate(config, str(SCHEMA))
    return config


def test_default_study_has_one_variant_without_overrides():
    assert study_variants(study()) == {"default": {}}


def test_variant_wins_over_training_dataset_and_architecture_options():
    config = study(
        training={"epochs": 10, "learning_rate": 0.01, "augmentation": {"rotation_range": 5}},
        dataset_options={"mnist": {"epochs": 20, "batch_size": 32}},
        architecture_options={"bn_cnn": {"epochs": 30, "learning_rate": 0.02}},
        variants={"base": {}, "long": {"epochs": 40, "augmentation": {"width_shift_range": 0.1}}},
    )
    variants = study_variants(config)
    base = experiment_settings(config, "mnist", "bn_cnn", variants["base"])
    long = experiment_settings(config, "mnist", "bn_cnn", variants["long"])
    assert (base["epochs"], base["batch_size"], base["learning_rate"]) == (30, 32, 0.02)
    assert (long["epochs"], long["batch_size"], long["learning_rate"]) == (40, 32, 0.02)
    # nested settings merge key by key: the variant adds a shift and keeps the shared rotation
    assert long["augmentation"]["rotation_range"] == 5 and long["augmentation"]["width_shift_range"] == 0.1
    assert experiment_settings(config, "digits", "simple_cnn", variants["long"])["epochs"] == 40


def test_sweep_expands_to_named_points_after_the_named_variants():
    config = study(variants={"default": {}, "plateau": {"schedule": "plateau"}},
                   sweep={"learning_rate": [0.001, 0.0003], "batch_size": [64, 128]})
    assert list(study_variants(config)) == [
        "default", "plateau",
        "learning_rate=0.001,batch_size=64", "learning_rate=0.001,batch_size=128",
        "learning_rate=0.0003,batch_size=64", "learning_rate=0.0003,batch_size=128",
    ]
    assert study_variants(config)["learning_rate=0.0003,batch_size=64"] == {"learning_rate": 0.0003, "batch_size": 64}


def test_sweep_names_are_stable_and_reach_nested_settings():
    points = sweep_variants({"augmentation.rotation_range": [0, 15], "label_smoothing": [1e-05],
                             "augmentation.horizontal_flip": [True]})
    assert list(points) == [
        "augmentation.rotation_range=0,label_smoothing=1e-05,augmentation.horizontal_flip=true",
        "augmentation.rotation_range=15,label_smoothing=1e-05,augmentation.horizontal_flip=true",
    ]
    assert points[list(points)[1]] == {"augmentation": {"rotation_range": 15, "horizontal_flip": True},
                                       "label_smoothing": 1e-05}
    assert sweep_variants({}) == {}


def test_varied_settings_are_the_dotted_keys_any_variant_changes():
    variants = {"default": {}, "a": {"augmentation": {"rotation_range": 10}}, "b": {"epochs": 3, "schedule": "cosine"}}
    assert varied_settings(variants) == ["augmentation.rotation_range", "epochs", "schedule"]
    assert flatten({"early_stopping": {"enabled": True, "patience": 2}}) == {"early_stopping.enabled": True,
                                                                            "early_stopping.patience": 2}


@pytest.mark.parametrize("setting", [
    {"precision": "mixed_bfloat16"}, {"augmentation": {"zoom_range": 0.1}}, {"schedule": "plateau"},
    {"early_stopping": {"enabled": True}}, {"optimizer": "sgd"}, {"learning_rate": 0.1}, {"batch_size": 16},
    {"epochs": 2}, {"label_smoothing": 0.1}, {"batchnorm_momentum": 0.9}, {"fine_tune": {"layers": 0}},
])
def test_any_training_setting_can_be_varied(setting):
    assert study_variants(study(variants={"v": setting}))["v"] == setting


@pytest.mark.parametrize("variants, sweep, words", [
    ({"fast": {"lerning_rate": 0.1}}, {}, ["variant 'fast'", "'lerning_rate' is not a setting",
                                            "did you mean 'learning_rate'", "allowed: epochs, batch_size"]),
    ({"fast": {"epochs": "many"}}, {}, ["variant 'fast'", "epochs: 'many' is not of type 'integer'"]),
    ({"fast": {"optimizer": "rmsprop"}}, {}, ["variant 'fast'", "'rmsprop' is not allowed; choose from adam, adamw, sgd"]),
    ({"aug": {"augmentation": {"rotation": 10}}}, {}, ["variant 'aug'", "in augmentation: 'rotation' is not a setting",
                                                       "did you mean 'rotation_range'"]),
    ({"a/b": {}}, {}, ["variant 'a/b'", "folder name"]),
    ({"x": 3}, {}, ["variant 'x': expected training settings"]),
    (None, {"learning_rat": [0.1]}, ["sweep point 'learning_rat=0.1'", "did you mean 'learning_rate'"]),
    (None, {"augmentation.rotation_range": [-5]}, ["augmentation.rotation_range: -5 is less than the minimum of 0"]),
    (None, {"learning_rate": []}, ["sweep: give each training setting a non-empty list"]),
    (None, {"optimizer": ["adam/x"]}, ["cannot be part of a folder name"]),
])
def test_bad_variants_name_the_variant_the_key_and_the_choices(variants, sweep, words):
    config = {"datasets": ["digits"], "architectures": ["simple_cnn"], "seeds": [1], "sweep": sweep}
    if variants is not None:
        config["variants"] = variants
    with pytest.raises(ValueError) as error:
        check_variants(config, TRAINING_SCHEMA)
    for word in words:
        assert word in str(error.value)


def test_a_sweep_point_may_not_take_a_named_variants_name():
    with pytest.raises(ValueError, match="has the name of a variant"):
        study_variants({"variants": {"learning_rate=0.1": {}}, "sweep": {"learning_rate": [0.1]}})


def test_the_baseline_comes_first_whatever_order_the_variants_were_merged_in():
    """`--config 'variants={low_lr: ...}'` puts low_lr before config.yaml's default (Snakemake merges the
    file into the command line's values); the baseline stays default, or the one `baseline` names."""
    merged = {"variants": {"low_lr": {"learning_rate": 0.0003}, "default": {}}}
    assert list(study_variants(merged)) == ["default", "low_lr"]
    assert list(study_variants({**merged, "baseline": "low_lr"})) == ["low_lr", "default"]
    assert list(study_variants({"variants": {"b": {}, "a": {"epochs": 2}}})) == ["b", "a"]  # no default: the first
    swept = {"variants": {"default": {}}, "sweep": {"batch_size": [32, 64]}, "baseline": "batch_size=64"}
    assert list(study_variants(swept)) == ["batch_size=64", "default", "batch_size=32"]
    with pytest.raises(ValueError, match="baseline: 'low' is not a variant of the study; choose from low_lr, default"):
        study_variants({**merged, "baseline": "low"})


@pytest.mark.slow  # starts Snakemake in a subprocess
def test_the_readmes_one_run_variant_keeps_default_as_the_baseline(tmp_path):
    copy_workflow(tmp_path)
    readme = "variants={low_lr: {learning_rate: 0.0003}}"  # README, Variants and sweeps
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--config", readme],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "convbench: baseline variant default (set `baseline:` to compare against another)" in result.stderr


@pytest.mark.slow  # starts Snakemake in a subprocess
def test_snakemake_stops_on_a_bad_variant_before_any_job(tmp_path):
    copy_workflow(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--config", "variants={quick: {epoch: 1}}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "variant 'quick': 'epoch' is not a setting (did you mean 'epochs'?)" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def variant_study(differences, seeds=4, images=2000):
    """(summary, Resampled) of a baseline and one variant per entry of `differences` (its true effect on the
    chance of each test image being right); per seed a shared shift that the seed pairing removes."""
    from convbench.report.verdicts import Resampled

    rng = np.random.default_rng(1)
    rows, right = [], {}
    for seed in range(seeds):
        base = 0.9 + rng.normal(0, 0.01)
        for variant, effect in {"default": 0.0, **differences}.items():
            model = f"a · {variant}"
            right.setdefault(model, {})[seed] = rng.random(images) < base + effect
            rows.append({"dataset": "d", "architecture": "a", "variant": variant, "seed": seed, "model": model,
                         "variant_changes": "" if variant == "default" else f"x={variant}"})
    summary = pd.DataFrame(rows)
    summary["variant"] = pd.Categorical(summary["variant"], categories=["default", *differences])
    return summary, Resampled(right)


def test_variant_effects_pair_by_seed_and_test_image_against_the_baseline():
    summary, resampled = variant_study({"better": 0.05, "same": 0.0})
    effects = variant_effects(summary, "d", resampled).set_index("variant")
    better, same = effects.loc["better"], effects.loc["same"]
    assert better["baseline"] == "default" and better["paired_seeds"] == 4 and better["changes"] == "x=better"
    assert better["ci_low"] > 0 and better["verdict"] == "better beyond noise"
    assert same["ci_low"] < 0 < same["ci_high"] and same["verdict"] == "no effect beyond noise"
    html = style_variant_effects(effects.reset_index()).to_html()  # percentage points, as the leaderboard
    assert f"{100 * better['difference']:+.2f} points" in html and "no effect beyond noise" in html


def test_variant_effects_with_one_seed_cover_test_sampling_and_say_so():
    summary, resampled = variant_study({"v": 0.01}, seeds=1)
    one_seed = variant_effects(summary, "d", resampled).iloc[0]
    assert one_seed["ci_low"] < one_seed["ci_high"] and one_seed["noise covered"] == "test images only (one seed)"
    summary, resampled = variant_study({})
    assert variant_effects(summary, "d", resampled) is None


@pytest.mark.slow  # starts Snakemake in a subprocess
@pytest.mark.parametrize("study_file", sorted((PROJECT / "studies").glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_studies_plan_without_error(tmp_path, study_file):
    import re
    import shutil

    copy_workflow(tmp_path)
    shutil.copytree(PROJECT / "studies", tmp_path / "studies")
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", f"studies/{study_file.name}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    study = yaml.safe_load(study_file.read_text())
    expected = len(study["datasets"]) * len(study["architectures"]) * len(study.get("variants", {"default": {}})) * len(
        study["seeds"])
    if "search" in study:  # the default recipe on the confirmation seeds; the trials come once each step has run
        confirm = set(study["search"].get("confirm_seeds", [101, 102, 103])) - set(study["seeds"])
        expected += len(study["datasets"]) * len(study["architectures"]) * len(confirm)
    assert re.search(rf"^train_model\s+{expected}$", result.stdout, flags=re.M)


def test_only_a_set_knob_counts_as_augmentation():
    from convbench.base.config import augmentation_on

    assert not augmentation_on(None) and not augmentation_on({"rotation_range": 0, "fill_mode": "reflect"})
    assert augmentation_on({"horizontal_flip": True, "rotation_range": 0})
