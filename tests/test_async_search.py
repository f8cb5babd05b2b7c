"""The asynchronous search (search.asynchronous, issue #44 item 6): lanes that propose by ASHA's rule as their
trials finish. Simulated here in every finishing order a few seeds give; run by Snakemake in
test_search_workflow.py."""

import json
import random
import threading

import pytest

from convbench.tune.asynchronous import lane_proposal
from convbench.tune.halving import epochs_spent
from convbench.tune.proposals import proposals
from convbench.tune.record import lane_records, run_lane_step
from convbench.tune.search import Plan, trial_name

SPACE = {"learning_rate": {"log_uniform": [0.0001, 0.01]}, "batch_size": {"choice": [32, 64, 128]}}
BASELINE = {"learning_rate": 0.001, "batch_size": 64}


def plan(trials=9, method="random", batch=3, halving=True, epochs=9):
    return Plan.from_config({"method": method, "trials": trials, "batch": batch, "seed": 5, "space": SPACE,
                             "halving": {"min_epochs": 1, "eta": 3} if halving else None, "asynchronous": True},
                            epochs, baseline=BASELINE)


def score(trial):
    """A made-up validation score: better with more epochs, best near learning rate 0.003; trial 4 fails."""
    if trial["trial"] == 4:
        return {"score": None, "loss": None, "failed": "out of memory"}
    distance = abs(trial["settings"]["learning_rate"] - 0.003)
    return {"score": round(0.9 - 20 * distance + 0.01 * trial["rung"], 4), "loss": round(0.3 + distance, 4)}


def simulate(the_plan, order_seed):
    """Every lane proposes once, then a random lane's trial finishes and that lane proposes again, until every
    lane has ended: the proposals and the finished trials, in order."""
    rng = random.Random(order_seed)
    proposed, finished, running = [], [], {}

    def step(lane):
        trial = lane_proposal(the_plan, proposed, finished)
        if trial:
            proposed.append(trial)
            running[lane] = trial

    for lane in range(the_plan.batch):
        step(lane)
    while running:
        lane = rng.choice(sorted(running))
        trial = running.pop(lane)
        finished.append({**trial, **score(trial)})
        step(lane)
    return proposed, finished


@pytest.mark.parametrize("order_seed", range(6))
@pytest.mark.parametrize("method", ["random", "tpe"])
def test_in_any_finishing_order_no_rung_exceeds_the_synchronous_plan(order_seed, method):
    the_plan = plan(method=method, trials=12)
    proposed, finished = simulate(the_plan, order_seed)
    keys = [(trial["trial"], trial["rung"]) for trial in proposed]
    assert len(keys) == len(set(keys)) and len(finished) == len(proposed)  # every lane ended, nothing left running
    assert sorted(number for number, rung in keys if rung == 0) == list(range(1, 13))
    for rung in the_plan.rungs:
        held = [number for number, index in keys if index == rung.index]
        extra = 1 if rung.index == the_plan.rungs[-1].index and 1 in held else 0  # the baseline's one run more
        assert len(held) <= rung.trials + extra
    scores = {(trial["trial"], trial["rung"]): trial["score"] for trial in finished}
    for trial in proposed:
        if trial["rung"]:  # promoted from a finished, scored trial of the rung below, which the record names
            assert scores[(trial["trial"], trial["rung"] - 1)] is not None
            assert trial["parent"] == trial_name(the_plan, trial["trial"], trial["rung"] - 1)
    assert sum(trial["epochs"] for trial in proposed) <= epochs_spent(the_plan.rungs) + the_plan.rungs[-1].epochs
    last = the_plan.rungs[-1].index
    if scores.get((1, last - 1)) is not None:  # the default recipe, once it reached the rung below, competes at the last
        assert (1, last) in keys
    assert all(0 < trial["settings"]["learning_rate"] <= 0.01 for trial in proposed)


def test_random_and_grid_proposals_are_the_synchronous_searchs_whatever_the_order():
    the_plan = plan(trials=9)
    synchronous = proposals("random", the_plan.dimensions, 9, 3, the_plan.seed, (), BASELINE)
    for order_seed in range(3):
        proposed, _ = simulate(the_plan, order_seed)
        assert [trial["settings"] for trial in sorted(proposed, key=lambda t: t["trial"]) if trial["rung"] == 0] == synchronous


def test_a_promotion_comes_before_a_new_trial_and_takes_the_best_of_the_finished_share():
    the_plan = plan(trials=9)  # rungs 9 x 1, 3 x 3, 1 x 9 epochs: a third of each rung goes on
    made = proposals("random", the_plan.dimensions, 9, 3, the_plan.seed, (), BASELINE)
    proposed = [{"trial": number, "rung": 0, "epochs": 1, "settings": made[number - 1], "parent": None}
                for number in range(1, 5)]
    finished = [{**proposed[index], "score": accuracy, "loss": 0.5} for index, accuracy in ((0, 0.5), (1, 0.9), (2, 0.7))]
    promotion = lane_proposal(the_plan, proposed, finished)
    assert (promotion["trial"], promotion["rung"], promotion["epochs"]) == (2, 1, 3)
    assert promotion["parent"] == "async-trial002-r0" and promotion["settings"] == made[1]
    # the share of 3 finished trials (one) is taken: the lane starts trial 5
    assert lane_proposal(the_plan, [*proposed, promotion], finished)["trial"] == 5
    # a failed trial is never promoted, however it ranks
    failed = [{**finished[1], "score": None, "loss": None, "failed": "out of memory"}, finished[0], finished[2]]
    assert lane_proposal(the_plan, proposed, failed)["trial"] == 3


def test_a_lane_ends_when_there_is_nothing_to_propose_yet_and_the_baseline_waits_for_the_rungs_below():
    the_plan = plan(trials=3, epochs=3)  # rungs 3 x 1, 1 x 3
    made = proposals("random", the_plan.dimensions, 3, 3, the_plan.seed, (), BASELINE)
    proposed = [{"trial": number, "rung": 0, "epochs": 1, "settings": made[number - 1], "parent": None}
                for number in (1, 2, 3)]
    finished = [{**proposed[0], "score": 0.5, "loss": 0.5}, {**proposed[1], "score": 0.9, "loss": 0.5}]
    assert lane_proposal(the_plan, proposed, finished) is None  # trial 3 still training: this lane ends
    finished.append({**proposed[2], "score": 0.7, "loss": 0.5})
    best = lane_proposal(the_plan, proposed, finished)
    assert (best["trial"], best["rung"]) == (2, 1)
    baseline = lane_proposal(the_plan, [*proposed, best], finished)
    assert (baseline["trial"], baseline["rung"], baseline["parent"]) == (1, 1, "trial001-r0")  # one name everywhere
    assert lane_proposal(the_plan, [*proposed, best, baseline], finished) is None


def test_tpe_after_its_startup_trials_keeps_away_from_the_trials_in_flight_and_is_reproducible_from_its_inputs():
    the_plan = plan(method="tpe", trials=14, batch=2, halving=False, epochs=2)  # 10 startup trials
    proposed, finished = [], []
    for _ in range(10):
        trial = lane_proposal(the_plan, proposed, finished)
        proposed.append(trial)
        finished.append({**trial, **score(trial)})
    in_flight = lane_proposal(the_plan, proposed, finished)
    assert in_flight["trial"] == 11
    following = lane_proposal(the_plan, [*proposed, in_flight], finished)
    assert following["trial"] == 12 and following["settings"] != in_flight["settings"]
    assert lane_proposal(the_plan, [*proposed, in_flight], finished) == following


def test_lanes_taking_turns_never_propose_the_same_trial(tmp_path, monkeypatch):
    """Four lanes' first steps at once (threads, each its own open lock file, as processes have), then a lane whose
    trial finished sees its score."""
    the_plan = plan(trials=9)
    monkeypatch.chdir(tmp_path)  # experiment folders are relative to the workflow's directory
    search_dir = tmp_path / "results/search/digits/simple_cnn"
    start = threading.Barrier(3)

    def first_step(lane):
        start.wait()
        run_lane_step(the_plan, lane, 0, search_dir / f"lane{lane}/step0.json", "digits", "simple_cnn")

    threads = [threading.Thread(target=first_step, args=(lane,)) for lane in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = lane_records(search_dir, the_plan)
    assert sorted(record["trial"]["trial"] for record in records) == [1, 2, 3]
    first = next(record["trial"] for record in records if record["trial"]["trial"] == 2)
    experiment = tmp_path / first["experiment"]
    experiment.mkdir(parents=True)
    (experiment / "history.csv").write_text("epoch,val_accuracy,val_loss\n1,0.8,0.4\n")
    (experiment / "train_meta.json").write_text(json.dumps({"weights_from_epoch": 1}))
    lane = first["lane"]
    run_lane_step(the_plan, lane, 1, search_dir / f"lane{lane}/step1.json", "digits", "simple_cnn")
    record = json.loads((search_dir / f"lane{lane}/step1.json").read_text())
    assert record["saw_finished"] == {first["variant"]: 0.8} and record["trial"]["trial"] == 4
    assert sorted(record["saw_training"]) == sorted(r["trial"]["variant"] for r in records if r["trial"]["trial"] != 2)


def test_a_step_rerun_after_a_kill_takes_the_number_its_lost_record_had():
    the_plan = plan(trials=9)
    made = proposals("random", the_plan.dimensions, 9, 3, the_plan.seed, (), BASELINE)
    proposed = [{"trial": number, "rung": 0, "epochs": 1, "settings": made[number - 1], "parent": None}
                for number in (1, 2, 3, 4, 6, 7)]  # trial 5's step was killed before Snakemake kept its record
    again = lane_proposal(the_plan, proposed, [])
    assert (again["trial"], again["settings"]) == (5, made[4])


def test_records_of_another_plan_are_not_this_searchs(tmp_path, monkeypatch):
    """After `trials` changed, the old plan's lane records stay on disk until Snakemake reruns their steps."""
    monkeypatch.chdir(tmp_path)
    search_dir = tmp_path / "search"
    old, new = plan(trials=6), plan(trials=9)
    run_lane_step(old, 0, 0, search_dir / "lane0/step0.json", "digits", "simple_cnn")
    run_lane_step(old, 1, 0, search_dir / "lane1/step0.json", "digits", "simple_cnn")
    run_lane_step(new, 0, 0, search_dir / "lane0/step0.json", "digits", "simple_cnn")
    assert [record["trial"]["trial"] for record in lane_records(search_dir, new)] == [1]
    assert [record["trial"]["trial"] for record in lane_records(search_dir, old)] == [2]
