"""An asynchronous search (`search.asynchronous: true`): asynchronous successive halving (ASHA, Li et al. 2020).

The search runs `batch` lanes. Each lane is a chain of steps, and each step proposes one trial, trains it, and
lets the lane's next step propose again as soon as that trial finishes, whatever the other lanes are doing. A
step reads every trial proposed so far (by any lane) and those finished, and proposes by ASHA's rule:
1. a promotion, from the highest rung down: a finished trial of the rung below that is among its best
   `share` (the planned ratio of the two rungs, about 1/eta, of the trials finished there), while the rung
   holds fewer than `share`; so no rung ever holds more trials than the synchronous plan gives it;
2. else a new trial at rung 0 while fewer than `trials` have been proposed, numbered in proposal order
   (random and grid: the synchronous search's point of that number; tpe: from the scores so far, the trials
   still training kept apart by the constant liar);
3. else, once nothing below the last rung is training, the baseline recipe (trial 1) at the last rung when it
   is not already there, as in the synchronous search;
4. else the lane ends.
What a step proposes depends on which trials finished first, so a fresh run elsewhere may choose differently;
each step's record is kept, so rerunning a finished search changes nothing.
"""

from .halving import promoted
from .proposals import proposals, startup_trials, tpe_proposals
from .search import losses, modeled_points, modeled_rung, trial_name


def lane_proposal(plan, proposed, finished):
    """The next trial of a lane ({trial, rung, epochs, settings, parent}), or None when the lane ends.
    `proposed`: every trial proposed so far by any lane; `finished`: those trained, each with its `score` and
    `loss` (None when it failed)."""
    promotion = asha_promotion(plan, proposed, finished)
    if promotion:
        return promotion
    # the lowest free number: a step rerun after being killed re-proposes the trial it had taken, not another's
    free = sorted(set(range(1, plan.trials + 1)) - {trial["trial"] for trial in proposed if trial["rung"] == 0})
    if free:
        number = free[0]
        return {"trial": number, "rung": 0, "epochs": plan.rungs[0].epochs, "parent": None,
                "settings": new_trial_settings(plan, number, proposed, finished)}
    return baseline_promotion(plan, proposed, finished)


def asha_promotion(plan, proposed, finished):
    """The best trial ASHA promotes now, from the highest rung down, or None."""
    for rung in reversed(plan.rungs[1:]):
        below = plan.rungs[rung.index - 1]
        done = {trial["trial"]: trial for trial in finished if trial["rung"] == below.index}
        taken = {trial["trial"] for trial in proposed if trial["rung"] == rung.index}
        share = len(done) * rung.trials // below.trials
        if len(taken) >= share:
            continue
        scores = {number: trial["score"] for number, trial in done.items() if trial["score"] is not None}
        best = set(promoted(scores, min(share, len(scores)), losses(done))) - taken
        if best:
            (number,) = promoted({number: scores[number] for number in best}, 1, losses(done))
            return promotion(plan, done[number], rung)
    return None


def baseline_promotion(plan, proposed, finished):
    """The baseline recipe at the last rung once the rungs below are complete (no trial below it is training)
    and it is not there yet: one run more, so the chosen recipe is never worse than the default on validation."""
    last = plan.rungs[-1]
    baseline = plan.baseline_trial()
    if len(plan.rungs) == 1 or baseline is None:
        return None
    done = {(trial["trial"], trial["rung"]) for trial in finished}
    if any((trial["trial"], trial["rung"]) not in done for trial in proposed if trial["rung"] < last.index):
        return None
    if any(trial["trial"] == baseline and trial["rung"] == last.index for trial in proposed):
        return None
    below = [trial for trial in finished if trial["trial"] == baseline and trial["rung"] == last.index - 1]
    if not below or below[0]["score"] is None:
        return None
    return promotion(plan, below[0], last)


def promotion(plan, trial, rung):
    return {"trial": trial["trial"], "rung": rung.index, "epochs": rung.epochs, "settings": trial["settings"],
            "parent": trial_name(plan, trial["trial"], rung.index - 1)}


def new_trial_settings(plan, number, proposed, finished):
    """Trial `number`'s settings: the synchronous search's for random and grid, and for TPE's startup trials;
    after them TPE's, modeled on the highest rung with enough scores, the trials in flight kept apart."""
    if plan.method != "tpe" or number <= startup_trials(plan.trials, plan.batch):
        made = proposals(plan.method, plan.dimensions, plan.trials, plan.batch, plan.proposal_seed, (),
                         dict(plan.baseline) or None)
        return made[number - 1]
    done = {(trial["trial"], trial["rung"]) for trial in finished}
    in_flight = [trial["settings"] for trial in proposed if (trial["trial"], trial["rung"]) not in done]
    points = modeled_points(finished, modeled_rung(plan, finished))
    (settings,) = tpe_proposals(plan.dimensions, points, 1, plan.proposal_seed, pending=in_flight, stream=number)
    return settings
