"""The search's pure parts: its space, its proposals (deterministic per seed, extended without change
when the budget grows) and the successive-halving schedule."""

import math

import pytest
from convbench.tune.halving import Rung, epochs_spent, promoted, rungs
from convbench.tune.proposals import grid_proposals, proposals, random_proposals, startup_trials
from convbench.tune.space import parse_space

SPACE = {"learning_rate": {"log_uniform": [1e-4, 1e-2]}, "batch_size": {"choice": [32, 64, 128]},
         "augmentation.rotation_range": {"int": [0, 20]}, "label_smoothing": {"uniform": [0.0, 0.2]}}


def in_space(settings):
    return (1e-4 <= settings["learning_rate"] <= 1e-2 and settings["batch_size"] in (32, 64, 128)
            and 0 <= settings["augmentation.rotation_range"] <= 20 and 0 <= settings["label_smoothing"] <= 0.2
            and isinstance(settings["augmentation.rotation_range"], int))


@pytest.mark.parametrize("space, words", [
    ({"learning_rate": {"log_uniform": [0, 0.1]}}, "must be above 0"),
    ({"learning_rate": {"uniform": [0.1, 0.01]}}, "empty or inverted"),
    ({"epochs": {"int": [5, 5]}}, "empty or inverted"),
    ({"batch_size": {"choice": []}}, "choice takes"),
    ({"batch_size": {"choice": [32, 32]}}, "lists a value twice"),
    ({"batch_size": {"int": [16.5, 64]}}, "whole numbers"),
    ({"learning_rate": {"normal": [0, 1]}}, "one of log_uniform, uniform, int, choice"),
    ({"learning_rate": [0.1, 0.01]}, "give one distribution"),
    ({}, "at least one training setting"),
])
def test_a_bad_space_is_named_in_one_line(space, words):
    with pytest.raises(ValueError, match=words) as error:
        parse_space(space)
    assert "\n" not in str(error.value)


def test_each_distribution_maps_the_unit_interval_onto_its_range():
    learning_rate, batch_size, rotation, smoothing = parse_space(SPACE)
    assert learning_rate.from_unit(0.0) == 1e-4 and learning_rate.from_unit(0.5) == pytest.approx(1e-3, rel=1e-3)
    assert [batch_size.from_unit(u) for u in (0.0, 0.34, 0.99)] == [32, 64, 128]
    assert [rotation.from_unit(u) for u in (0.0, 0.999)] == [0, 20]  # both ends reachable
    assert smoothing.from_unit(0.25) == pytest.approx(0.05) and learning_rate.log_axis and not smoothing.log_axis


def test_rounding_never_leaves_the_range():
    (dimension,) = parse_space({"learning_rate": {"log_uniform": [0.000123456, 0.0123456]}})
    values = [dimension.from_unit(u) for u in (0.0, 0.999999)]
    assert 0.000123456 <= values[0] and values[1] <= 0.0123456
    assert dimension.snapped(0.01234999) == 0.0123456  # rounded up past the end: the end itself


def test_random_proposals_are_a_pure_function_of_the_seed_and_grow_by_appending():
    dimensions = parse_space(SPACE)
    first = random_proposals(dimensions, 16, seed=3)
    assert first == random_proposals(dimensions, 16, seed=3)
    assert random_proposals(dimensions, 40, seed=3)[:16] == first  # more trials: the earlier ones unchanged
    assert random_proposals(dimensions, 16, seed=4) != first
    assert all(in_space(settings) for settings in first)
    assert len({settings["batch_size"] for settings in first}) == 3  # Sobol covers every choice


def test_random_proposals_spread_over_the_log_range():
    learning_rates = [settings["learning_rate"] for settings in random_proposals(parse_space(SPACE), 32, seed=0)]
    decades = [sum(low <= rate < low * 10 for rate in learning_rates) for low in (1e-4, 1e-3)]
    assert decades[0] == pytest.approx(16, abs=3) and decades[1] == pytest.approx(16, abs=3)


def test_grid_is_every_combination_last_key_fastest():
    dimensions = parse_space({"batch_size": {"choice": [32, 64]}, "augmentation.rotation_range": {"int": [0, 2]}})
    assert grid_proposals(dimensions, 6) == [{"batch_size": size, "augmentation.rotation_range": angle}
                                             for size in (32, 64) for angle in (0, 1, 2)]
    with pytest.raises(ValueError, match="grid search takes choice or int"):
        grid_proposals(parse_space({"learning_rate": {"uniform": [0.1, 0.2]}}), 4)


def score(settings):
    """A made-up validation accuracy, best at learning rate 1e-3 and no rotation."""
    return 1 - abs(math.log10(settings["learning_rate"]) + 3) / 4 - settings["augmentation.rotation_range"] / 100


def run_tpe(trials, batch, seed):
    """A TPE search driven as the workflow drives it: propose what can be proposed, score it, again."""
    dimensions, made = parse_space(SPACE), []
    while len(made) < trials:
        made = proposals("tpe", dimensions, trials, batch, seed, [(settings, score(settings)) for settings in made])
    return made


def test_tpe_starts_from_the_random_points_then_proposes_batch_by_batch_from_the_scores():
    pytest.importorskip("optuna")
    dimensions = parse_space(SPACE)
    startup = startup_trials(24, 4)
    assert startup == 12 and startup_trials(6, 4) == 6
    assert proposals("tpe", dimensions, 24, 4, 5) == random_proposals(dimensions, startup, 5)  # nothing scored yet
    made = run_tpe(24, 4, seed=5)
    assert len(made) == 24 and all(in_space(settings) for settings in made)
    assert made[:startup] == random_proposals(dimensions, startup, 5)
    assert made == run_tpe(24, 4, seed=5)  # the same scores, the same proposals, bit for bit
    assert run_tpe(32, 4, seed=5)[:24] == made  # a larger budget appends
    best_of = lambda trials: max(map(score, trials))  # noqa: E731
    assert best_of(made) >= best_of(random_proposals(dimensions, 24, 5)) - 0.05  # it learns from the scores


def test_successive_halving_keeps_a_third_per_rung_and_ends_at_the_studys_epochs():
    schedule = rungs(27, max_epochs=9, min_epochs=1, eta=3)
    assert schedule == (Rung(0, 1, 27), Rung(1, 3, 9), Rung(2, 9, 3))
    assert epochs_spent(schedule) / (27 * 9) <= 0.4  # the budget: at most 40 % of training all for 9
    assert rungs(10, max_epochs=20, min_epochs=2, eta=2)[-1] == Rung(3, 20, 1)
    assert rungs(8, max_epochs=5) == (Rung(0, 5, 8),)  # no halving: one rung at the study's epochs
    with pytest.raises(ValueError, match="min_epochs <= epochs"):
        rungs(9, max_epochs=3, min_epochs=4)
    with pytest.raises(ValueError, match="eta >= 2"):
        rungs(9, max_epochs=9, min_epochs=1, eta=1)


def test_promotion_takes_the_best_validation_scores_and_breaks_ties_by_trial():
    assert promoted({0: 0.5, 1: 0.9, 2: 0.7, 3: 0.9}, 2) == [1, 3]
    assert promoted({4: 0.8, 2: 0.8, 7: 0.1}, 1) == [2]


# ---------------------------------------------------------------- a search as steps (convbench.tune.search)

import json  # noqa: E402

from convbench.tune.record import choose, read_record, run_step  # noqa: E402
from convbench.tune.search import Plan, chosen_trial, step_trials  # noqa: E402

TPE_HALVING = {"method": "tpe", "trials": 9, "batch": 2, "seed": 5, "halving": {"min_epochs": 1, "eta": 3},
               "space": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}, "batch_size": {"choice": [32, 64]}}}


def fake_scores(record):
    """A deterministic stand-in for training: a score from the settings and the epochs."""
    return [{**trial, "score": trial.get("score", round(0.5 + 0.1 * trial["epochs"] - abs(trial["settings"]["learning_rate"]
                                                                                            - 0.003) * 20, 6))}
            for trial in record]


def run_search(search, epochs=9):
    plan, record = Plan.from_config(search, epochs), []
    for step in range(plan.step_count()):
        record = fake_scores(record + step_trials(plan, step, fake_scores(record)))
    return plan, record


def test_the_steps_of_a_tpe_search_with_halving():
    plan = Plan.from_config(TPE_HALVING, epochs=9)
    assert plan.blocks() == [(0, 9)]  # startup: Optuna's 10 in whole batches, never past the budget
    assert [(rung.epochs, rung.trials) for rung in plan.rungs] == [(1, 9), (3, 3), (9, 1)]
    larger = Plan.from_config({**TPE_HALVING, "trials": 16}, epochs=9)
    assert larger.blocks() == [(0, 10), (10, 12), (12, 14), (14, 16)] and larger.step_count() == 6
    assert [larger.step_of(trial) for trial in (1, 10, 11, 16)] == [0, 0, 1, 3]
    assert Plan.from_description(larger.describe()) == larger


def run_search_by_step(search, epochs=9):
    """Like run_search, each step's new trials kept apart."""
    plan, record, steps = Plan.from_config(search, epochs), [], []
    for step in range(plan.step_count()):
        steps.append(step_trials(plan, step, fake_scores(record)))
        record = fake_scores(record + steps[-1])
    return plan, record, steps


def test_a_search_is_the_same_bit_for_bit_and_promotes_by_score():
    plan, record = run_search({**TPE_HALVING, "trials": 16})
    assert run_search({**TPE_HALVING, "trials": 16})[1] == record
    assert [sum(trial["rung"] == rung.index for trial in record) for rung in plan.rungs] == [16, 5, 1]  # halving's budget
    rung1 = [trial for trial in record if trial["rung"] == 1]
    assert all(trial["parent"] == f"trial{trial['trial']:03d}-r0" for trial in rung1)
    assert chosen_trial(plan, record)["rung"] == 2


def test_random_search_promotes_the_best_of_a_complete_rung():
    plan, record, steps = run_search_by_step({**TPE_HALVING, "method": "random", "trials": 9})
    rung0 = sorted((trial for trial in record if trial["rung"] == 0), key=lambda trial: (-trial["score"], trial["trial"]))
    assert [trial["rung"] for trial in steps[0]] == [0] * 9 and {trial["rung"] for trial in steps[1]} == {1}
    assert sorted(trial["trial"] for trial in steps[1]) == sorted(trial["trial"] for trial in rung0[:3])


def test_tpe_promotes_as_batches_finish_and_models_the_highest_rung_with_enough_scores():
    """Asynchronous halving's rule capped at halving's share, and BOHB's: d + 1 scores on a rung make it the
    one TPE models (2 settings searched here: 3 scores)."""
    from convbench.tune.search import modeled_rung

    search = {**TPE_HALVING, "trials": 27, "batch": 3}
    plan, record, steps = run_search_by_step(search)
    assert [(first, last) for first, last in plan.blocks()][:2] == [(0, 12), (12, 15)]
    assert [trial["trial"] for trial in steps[1] if trial["rung"] == 1] != []  # promoted before rung 0 is complete
    before_block = {}
    for step, trials in enumerate(steps):
        known = [trial for earlier in steps[:step] for trial in earlier]
        before_block[step] = modeled_rung(plan, known)
    assert before_block[0] == 0 and max(before_block.values()) >= 1
    for step, trials in enumerate(steps):  # never more promoted than halving's share of what finished
        known = [trial for earlier in steps[:step + 1] for trial in earlier]
        finished0 = sum(trial["rung"] == 0 for earlier in steps[:step] for trial in earlier)
        assert sum(trial["rung"] == 1 for trial in known) <= finished0 * plan.rungs[1].trials // plan.rungs[0].trials
    assert [sum(trial["rung"] == rung.index for trial in record) for rung in plan.rungs] == [27, 9, 3]
    assert len(steps) == plan.step_count() and any(trial["rung"] == 2 for trial in steps[-1])


def test_raising_trials_keeps_every_earlier_proposal():
    _, small = run_search({**TPE_HALVING, "trials": 12})
    _, large = run_search({**TPE_HALVING, "trials": 20})
    first = {trial["trial"]: trial["settings"] for trial in small if trial["rung"] == 0}
    assert {number: settings for number, settings in
            ((trial["trial"], trial["settings"]) for trial in large if trial["rung"] == 0) if number in first} == first


def write_trial(folder, val_accuracy, test_accuracy, val_loss=0.5):
    """A trained trial's files as train_model writes them; metrics.json holds a test score selection must not see."""
    folder.mkdir(parents=True)
    (folder / "train_meta.json").write_text(json.dumps({"weights_from_epoch": 2}))
    (folder / "history.csv").write_text(f"epoch,val_accuracy,val_loss\n1,0.1,2.0\n2,{val_accuracy},{val_loss}\n")
    (folder / "metrics.json").write_text(json.dumps({"accuracy": test_accuracy}))


def proposed(tmp_path, monkeypatch, trials=2):
    """A random search's first step run in tmp_path: (plan, its trials)."""
    monkeypatch.chdir(tmp_path)
    search = {"method": "random", "trials": trials, "batch": 1, "seed": 0, "halving": None,
              "space": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}}}
    plan = Plan.from_config(search, epochs=2)
    return plan, run_step(plan, 0, None, "step0.json", "digits", "simple_cnn")


def test_selection_reads_validation_never_test(tmp_path, monkeypatch):
    plan, (first, second) = proposed(tmp_path, monkeypatch)
    write_trial(tmp_path / first["experiment"], val_accuracy=0.9, test_accuracy=0.5)  # best on validation
    write_trial(tmp_path / second["experiment"], val_accuracy=0.8, test_accuracy=0.99)  # best on test
    winner = choose(plan, read_record("step0.json")["trials"], "search.json", "digits", "simple_cnn", "default")
    assert winner["trial"] == 1
    assert json.loads((tmp_path / "search.json").read_text())["chosen"]["validation_accuracy"] == 0.9


def test_a_search_whose_trials_all_diverged_names_the_fix(tmp_path, monkeypatch):
    plan, (trial,) = proposed(tmp_path, monkeypatch, trials=1)
    folder = tmp_path / trial["experiment"]
    folder.mkdir(parents=True)
    (folder / "train_meta.json").write_text(json.dumps({"diverged": True}))
    with pytest.raises(ValueError, match="every trial of rung 0 .1. failed: diverged: the loss became NaN.*narrow the search space"):
        choose(plan, read_record("step0.json")["trials"], "search.json", "digits", "simple_cnn", "default")


def test_equal_validation_accuracy_goes_to_the_lower_validation_loss(tmp_path, monkeypatch):
    """144 validation images score in steps of 0.69 points: ties are common, and the earlier trial is no reason."""
    plan, (first, second) = proposed(tmp_path, monkeypatch)
    write_trial(tmp_path / first["experiment"], val_accuracy=0.9, test_accuracy=0.5, val_loss=0.40)
    write_trial(tmp_path / second["experiment"], val_accuracy=0.9, test_accuracy=0.5, val_loss=0.35)
    assert choose(plan, read_record("step0.json")["trials"], "search.json", "digits", "simple_cnn", "default")["trial"] == 2


@pytest.mark.parametrize("method", ["random", "grid", "tpe"])
def test_the_baseline_recipe_is_trial_1_and_joins_the_last_rung(method):
    """Enqueued as Optuna's enqueue_trial: the chosen recipe can never be worse than the default on validation.
    Its batch size lies outside the searched choices: it is tried all the same, and TPE models only the others."""
    space = {"learning_rate": {"log_uniform": [1e-4, 1e-2]}, "batch_size": {"choice": [32, 64]}}
    if method == "grid":
        space = {"learning_rate": {"choice": [0.0001, 0.001, 0.01]}, "batch_size": {"choice": [32, 64]}}
    search = {"method": method, "trials": 6, "batch": 2, "seed": 0, "halving": {"min_epochs": 1, "eta": 3}, "space": space}
    plan = Plan.from_config(search, epochs=3, baseline={"learning_rate": 0.001, "batch_size": 128, "epochs": 3})
    assert plan.describe()["baseline"] == {"learning_rate": 0.001, "batch_size": 128}
    assert Plan.from_description(plan.describe()) == plan
    record = []
    for step in range(plan.step_count()):
        new = step_trials(plan, step, record)
        # the baseline scores worst at every rung
        record += [{**trial, "score": 0.1 if trial["trial"] == 1 else 0.5 + trial["trial"] / 100, "loss": 1.0}
                   for trial in new]
    first = [trial for trial in record if trial["trial"] == 1]
    assert first[0]["settings"] == {"learning_rate": 0.001, "batch_size": 128}
    assert [trial["rung"] for trial in first] == [rung.index for rung in plan.rungs]
    # halving's budget, and one run more: the baseline, not among the best, joins the last rung
    assert [sum(trial["rung"] == rung.index for trial in record) for rung in plan.rungs] == [6, 3]
    assert len({json.dumps(trial["settings"], sort_keys=True) for trial in record if trial["rung"] == 0}) == 6


def test_a_repeat_proposes_from_its_own_seed_and_shares_the_default_recipe():
    from convbench.tune.search import parse_trial_variant, trial_name

    search = {**TPE_HALVING, "method": "random", "trials": 6}
    plan = Plan.from_config(search, epochs=9, baseline={"learning_rate": 0.001, "batch_size": 64})
    again = plan.for_repeat(2)
    assert Plan.from_description(again.describe()) == again and again.seed == plan.seed  # trials train alike
    first, second = (step_trials(p, 0, []) for p in (plan, again))
    assert first[0]["settings"] == second[0]["settings"] == {"learning_rate": 0.001, "batch_size": 64}
    assert [trial["settings"] for trial in first[1:]] != [trial["settings"] for trial in second[1:]]
    assert trial_name(again, 1, 0) == "trial001-r0" and trial_name(again, 4, 1) == "rep2-trial004-r1"
    assert trial_name(plan, 4, 1) == "trial004-r1"
    assert parse_trial_variant("rep2-trial004-r1") == (4, 1, 2) and parse_trial_variant("trial004-r1") == (4, 1, 0)
    assert parse_trial_variant("rep2-default") is None


# ---------------------------------------------------------------- failed trials (convbench.tune.search, .trial)

def failing(record, failed):
    """fake_scores, with the trials `failed` ({(trial, rung): why}) failed: no score, their reason."""
    return [{**trial, "score": None, "loss": None, "failed": failed[(trial["trial"], trial["rung"])]}
            if (trial["trial"], trial["rung"]) in failed else trial for trial in fake_scores(record)]


def run_failing_search(search, failed, epochs=9):
    plan, record = Plan.from_config(search, epochs), []
    for step in range(plan.step_count()):
        check_rungs(plan, record)
        record = failing(record + step_trials(plan, step, record), failed)
    check_rungs(plan, record)
    return plan, record


from convbench.tune.search import check_rungs, modeled_points  # noqa: E402


def test_a_failed_trial_is_never_promoted_and_the_search_goes_on():
    search = {**TPE_HALVING, "method": "random", "trials": 9}
    _, clean = run_search(search)
    best = max((trial for trial in clean if trial["rung"] == 0), key=lambda trial: trial["score"])["trial"]
    plan, record = run_failing_search(search, {(best, 0): "killed by SIGKILL (out of memory, most likely)"})
    assert not any(trial["trial"] == best and trial["rung"] > 0 for trial in record)
    assert [sum(trial["rung"] == rung.index for trial in record) for rung in plan.rungs] == [9, 3, 1]  # the next best
    assert chosen_trial(plan, record)["score"] is not None


def test_tpe_models_a_nan_loss_as_the_worst_score_and_leaves_out_a_crash():
    """As Optuna: a FAIL trial informs no sampler; a diverged one is a result, the worst."""
    record = [{"trial": 1, "rung": 0, "settings": {"a": 1}, "score": 0.9},
              {"trial": 2, "rung": 0, "settings": {"a": 2}, "score": None, "failed": "diverged", "diverged": True},
              {"trial": 3, "rung": 0, "settings": {"a": 3}, "score": None, "failed": "killed by SIGKILL"},
              {"trial": 4, "rung": 0, "settings": {"a": 4}, "score": None}]  # a record before `failed`: diverged
    assert modeled_points(record, 0) == [({"a": 1}, 0.9), ({"a": 2}, -1.0), ({"a": 4}, -1.0)]


def test_a_search_ends_in_an_error_only_when_every_trial_of_a_rung_failed():
    search = {**TPE_HALVING, "method": "random", "trials": 9}
    everything = {(trial, 0): f"ResourceExhaustedError: OOM when allocating tensor ({trial})" for trial in range(1, 10)}
    with pytest.raises(ValueError, match=r"every trial of rung 0 \(9\) failed: ResourceExhaustedError.*give training more memory"):
        run_failing_search(search, everything)
    all_but_one = {key: why for key, why in everything.items() if key != (4, 0)}
    plan, record = run_failing_search(search, all_but_one)  # one trial trained: it goes on to the end
    assert chosen_trial(plan, record)["trial"] == 4
    finals = {(trial, 1): "killed by SIGSEGV" for trial in range(1, 10)}
    with pytest.raises(ValueError, match="every trial of rung 1 .*killed by SIGSEGV"):
        run_failing_search(search, finals)


def test_a_failed_trial_is_recorded_and_shown_with_its_reason(tmp_path, monkeypatch):
    """The record reads a failed trial's train_meta.json (convbench.tune.trial.record_failure), the search
    chooses among the others, and the report lists the failure with its settings and reason."""
    from convbench.report.search import failed_trials, shown_value
    from convbench.tune.trial import record_failure

    plan, (first, second) = proposed(tmp_path, monkeypatch)
    spec = {"arch": "simple_cnn", "dataset": "digits", "variant": second["variant"], "seed": 0, "settings": {},
            "variant_overrides": {"search": {"trial": 2, "rung": 0}}}
    folder = tmp_path / second["experiment"]
    folder.mkdir(parents=True)
    record_failure(spec, "killed by SIGKILL (out of memory, most likely)", folder / "history.csv",
                   folder / "train_meta.json")
    write_trial(tmp_path / first["experiment"], val_accuracy=0.5, test_accuracy=0.5)
    assert choose(plan, read_record("step0.json")["trials"], "search.json", "digits", "simple_cnn", "default")["trial"] == 1
    result = json.loads((tmp_path / "search.json").read_text())
    assert result["trials"][1]["failed"] == "killed by SIGKILL (out of memory, most likely)"
    shown = failed_trials(result)
    assert "1 trial run(s) failed" in shown and f"trial 2 at rung 0 (learning_rate {shown_value(second['settings']['learning_rate'])})" in shown
    assert shown.endswith("killed by SIGKILL (out of memory, most likely)") and failed_trials({"trials": result["trials"][:1]}) is None


def test_a_proposal_an_earlier_repeat_made_is_its_experiment_not_trained_again(tmp_path, monkeypatch):
    """On a small discrete space the repeats' proposals coincide: the same settings at the same epochs (and the
    same training seed) are one experiment, trained once; a promotion names the experiment it came from."""
    monkeypatch.chdir(tmp_path)
    search = {"method": "random", "trials": 4, "batch": 1, "seed": 0, "halving": {"min_epochs": 1, "eta": 2},
              "space": {"batch_size": {"choice": [32, 64]}, "augmentation.horizontal_flip": {"choice": [False, True]}}}
    plans = [Plan.from_config(search, epochs=2).for_repeat(repeat) for repeat in (0, 1)]
    first = run_step(plans[0], 0, None, "r0-step0.json", "digits", "simple_cnn")
    second = run_step(plans[1], 0, None, "r1-step0.json", "digits", "simple_cnn", earlier_repeats=["r0-step0.json"])
    by_settings = {json.dumps(trial["settings"], sort_keys=True): trial["variant"] for trial in first}
    shared = [trial for trial in second if json.dumps(trial["settings"], sort_keys=True) in by_settings]
    assert shared  # 4 trials from 4 points: repeat 1 proposes some of repeat 0's
    for trial in second:
        key = json.dumps(trial["settings"], sort_keys=True)
        assert trial["variant"] == by_settings.get(key, f"rep1-trial{trial['trial']:03d}-r0")
        assert trial["experiment"].endswith(f"/{trial['variant']}/seed0")
    for trial in second:  # train them all: the step after promotes, naming each parent's own experiment
        write_trial(tmp_path / trial["experiment"], val_accuracy=0.5 + trial["trial"] / 100, test_accuracy=0.5) \
            if not (tmp_path / trial["experiment"]).exists() else None
    promoted_trials = run_step(plans[1], 1, "r1-step0.json", "r1-step1.json", "digits", "simple_cnn")
    variants = {trial["trial"]: trial["variant"] for trial in second}
    assert promoted_trials and all(trial["parent"] == variants[trial["trial"]] for trial in promoted_trials)
