"""Proposing trials: each a {dotted setting: value} point of the search space.

Every method is a pure function of the space, the search seed and (for TPE) the scores so far, so a
rerun, or a search killed and started again, proposes the same trials bit for bit, and raising
`trials` only appends: the earlier proposals stay as they were.
- random: a scrambled Sobol sequence (scipy), which covers the space more evenly than independent draws;
  its first n points do not depend on how many follow.
- grid: every combination of the dimensions' values, last key fastest (a `sweep` as a search).
- tpe: Optuna's TPE sampler in ask/tell mode, `batch` trials at a time from the scores of the batches
  before (the constant-liar strategy keeps a batch's trials apart); its first batches are the random
  search's points, so TPE and random search start from the same trials.
"""

import itertools
import math

OPTUNA_EXTRA = "pip install optuna (a dependency of convbench: reinstall from requirements.lock)"


def random_proposals(dimensions, count, seed):
    """The first `count` points of the scrambled Sobol sequence of `seed`, as settings."""
    import warnings

    from scipy.stats import qmc

    with warnings.catch_warnings():  # "balance properties require n to be a power of 2": prefixes are what we need
        warnings.simplefilter("ignore", UserWarning)
        points = qmc.Sobol(d=len(dimensions), scramble=True, seed=seed).random(count)
    return [{dimension.key: dimension.from_unit(float(u)) for dimension, u in zip(dimensions, point)}
            for point in points]


def grid_proposals(dimensions, count):
    """The first `count` points of the grid, last key fastest."""
    keys = [dimension.key for dimension in dimensions]
    points = itertools.product(*(dimension.grid_values() for dimension in dimensions))
    return [dict(zip(keys, values)) for values in itertools.islice(points, count)]


def startup_trials(trials, batch):
    """How many of TPE's first trials are the random search's: Optuna's default 10, in whole batches
    (never more than the budget). It does not depend on the budget otherwise, so a larger `trials`
    keeps every earlier proposal."""
    return min(trials, math.ceil(10 / batch) * batch)


def tpe_proposals(dimensions, scored, count, seed, pending=(), stream=None):
    """The next `count` trials after `scored` ([(settings, validation score)], in trial order) by TPE.
    `pending`: settings of trials still training (an asynchronous search's), which the constant liar keeps the
    new ones apart from; `stream`: which of the seed's samplers proposes (default: one per number scored)."""
    try:
        import optuna
    except ImportError:
        raise ImportError(f"search method tpe needs Optuna: {OPTUNA_EXTRA}") from None

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {dimension.key: optuna_distribution(dimension) for dimension in dimensions}
    # One seed per batch, from the search seed and how many trials came before: the same history
    # gives the same batch, whatever ran in between.
    sampler = optuna.samplers.TPESampler(seed=seed * 100_003 + (len(scored) if stream is None else stream),
                                         n_startup_trials=0, constant_liar=True, multivariate=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for settings, score in scored:
        try:
            trial = optuna.trial.create_trial(params=dict(settings), distributions=distributions, value=float(score))
        except ValueError:  # the baseline recipe outside the searched ranges: TPE's model has no place for it
            continue
        study.add_trial(trial)
    for settings in pending:  # running trials: the constant liar counts them as bad until they finish
        try:
            study.add_trial(optuna.trial.create_trial(params=dict(settings), distributions=distributions,
                                                      state=optuna.trial.TrialState.RUNNING))
        except ValueError:  # outside the searched ranges (the baseline recipe), as above
            continue
    asked = [study.ask(distributions).params for _ in range(count)]  # pending trials: the constant liar spreads them
    return [{dimension.key: from_param(dimension, point[dimension.key]) for dimension in dimensions} for point in asked]


def optuna_distribution(dimension):
    import optuna

    if dimension.kind == "choice":
        return optuna.distributions.CategoricalDistribution(list(dimension.values))
    low, high = dimension.values
    if dimension.kind == "int":
        return optuna.distributions.IntDistribution(low, high)
    return optuna.distributions.FloatDistribution(low, high, log=dimension.kind == "log_uniform")


def from_param(dimension, value):
    """A value Optuna proposed, as the search space gives it: floats rounded, within the range."""
    return value if dimension.kind in ("choice", "int") else dimension.snapped(value)


def proposals(method, dimensions, trials, batch, seed, scored=(), baseline=None):
    """Every trial that can be proposed now, in trial order: all of them for random and grid; for tpe
    the startup trials, then one batch after each batch whose scores are in `scored`. `baseline` (the
    default recipe's values) is trial 1, as Optuna's enqueue_trial; the method's own points follow."""
    enqueued = [dict(baseline)] if baseline else []
    if method == "random":
        return enqueued + random_proposals(dimensions, trials - len(enqueued), seed)
    if method == "grid":
        others = [point for point in grid_proposals(dimensions, trials + 1) if point not in enqueued]
        return enqueued + others[:trials - len(enqueued)]
    startup = startup_trials(trials, batch)
    made = enqueued + random_proposals(dimensions, startup - len(enqueued), seed)
    scored = list(scored)
    while len(made) < trials and len(scored) >= len(made):
        made += tpe_proposals(dimensions, scored[: len(made)], min(batch, trials - len(made)), seed)
    return made
