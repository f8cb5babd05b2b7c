"""Successive halving (Jamieson & Talwalkar 2016): every trial trains for `min_epochs`, the best 1/eta
by validation accuracy go on to eta times the epochs, and so on; the last rung trains for the study's
own epochs, so that the chosen recipe has the budget the default recipe has.

A promoted trial is trained again from its first epoch at the new budget, not resumed from its rung's
model: a schedule that depends on the number of epochs (cosine, step milestones, warm-up) then runs as
it would for a plain experiment of that length, and a rung's trial is exactly the experiment a user
would get with those settings and epochs (the same cached folder, were it asked for directly).
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rung:
    index: int
    epochs: int
    trials: int  # how many trials train at this rung


def rungs(trials, max_epochs, min_epochs=None, eta=3):
    """The schedule of a search of `trials` trials: without halving (min_epochs None) one rung at
    max_epochs; else rungs at min_epochs * eta^k epochs while below max_epochs, then one at max_epochs,
    keeping trials // eta^k of them (at least one)."""
    if min_epochs is None:
        return (Rung(0, max_epochs, trials),)
    if eta < 2 or min_epochs < 1 or min_epochs > max_epochs:
        raise ValueError(f"halving needs eta >= 2 and 1 <= min_epochs <= epochs ({max_epochs}); "
                         f"got eta {eta}, min_epochs {min_epochs}")
    schedule, epochs, kept = [], min_epochs, trials
    while epochs < max_epochs and kept > 1:
        schedule.append(Rung(len(schedule), epochs, kept))
        epochs, kept = epochs * eta, max(1, kept // eta)
    schedule.append(Rung(len(schedule), max_epochs, kept))
    return tuple(schedule)


def promoted(scores, count, losses=None):
    """The `count` trials with the best validation scores ({trial: score}); a tie goes to the lower validation
    loss ({trial: loss}, when given), then to the earlier trial."""
    losses = losses or {}
    return sorted(sorted(scores, key=lambda trial: (-scores[trial], losses.get(trial, math.inf), trial))[:count])


def epochs_spent(schedule):
    return sum(rung.epochs * rung.trials for rung in schedule)
