"""A search space: training settings (dotted keys, as in `sweep`) each with a distribution, read from
the config's `search.space`, and the mapping from a point of the unit cube to settings."""

import math
from dataclasses import dataclass

# One table of the distributions a search space may use: what its value list means, and whether a
# plot of scores against the setting takes a log axis.
DISTRIBUTIONS = {
    "log_uniform": {"takes": "[low, high], low > 0", "log_axis": True},
    "uniform": {"takes": "[low, high]", "log_axis": False},
    "int": {"takes": "[low, high], both included", "log_axis": False},
    "choice": {"takes": "[value, ...]", "log_axis": False},
}
EDGE = 0.05  # a chosen value this close to an end of its range (fraction of the range) may want a wider range
SIGNIFICANT_DIGITS = 4  # proposed floats are rounded: readable in train_meta.json, and the same on every machine


@dataclass(frozen=True)
class Dimension:
    key: str  # a training setting, dotted for nested ones: "augmentation.rotation_range"
    kind: str  # a key of DISTRIBUTIONS
    values: tuple  # (low, high), or the choices

    @property
    def log_axis(self):
        return DISTRIBUTIONS[self.kind]["log_axis"]

    def from_unit(self, u):
        """The setting's value at u in [0, 1): its quantile, so that evenly spread points spread evenly."""
        if self.kind == "choice":
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        low, high = self.values
        if self.kind == "int":
            return min(int(low + math.floor(u * (high - low + 1))), high)
        if self.kind == "log_uniform":
            return self.snapped(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
        return self.snapped(low + u * (high - low))

    def snapped(self, value):
        """A float of this dimension rounded (SIGNIFICANT_DIGITS) and kept within its range, which rounding
        alone could leave by the last digit."""
        low, high = self.values
        return min(max(rounded(value), low), high)

    def near_end(self, value, within=EDGE):
        """'lower' or 'upper' when a value lies within `within` (a fraction of the range; of its logarithm for
        log_uniform) of an end of a range, else None; a choice has no ends."""
        if self.kind == "choice":
            return None
        low, high = self.values
        scale = math.log if self.kind == "log_uniform" else float
        position = (scale(value) - scale(low)) / (scale(high) - scale(low))
        return "lower" if position <= within else "upper" if position >= 1 - within else None

    def grid_values(self):
        """Every value a grid search visits: a choice's values, or an int range's integers."""
        if self.kind == "choice":
            return list(self.values)
        if self.kind == "int":
            return list(range(self.values[0], self.values[1] + 1))
        raise ValueError(f"search.space.{self.key}: a grid search takes choice or int, not {self.kind}")


def rounded(value):
    if value == 0:
        return 0.0
    return round(value, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))


def parse_space(space):
    """The dimensions of `search.space` ({dotted key: {distribution: values}}), in the config's order.
    Raises ValueError naming the key and what it takes."""
    dimensions = []
    for key, spec in space.items():
        where = f"search.space.{key}"
        if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in DISTRIBUTIONS):
            raise ValueError(f"{where}: give one distribution, e.g. {{log_uniform: [0.0001, 0.01]}}; "
                             f"one of {', '.join(DISTRIBUTIONS)}")
        kind, values = next(iter(spec.items()))
        dimensions.append(Dimension(key, kind, tuple(check_values(where, kind, values))))
    if not dimensions:
        raise ValueError("search.space: name at least one training setting to search, "
                         "e.g. {learning_rate: {log_uniform: [0.0001, 0.01]}}")
    return tuple(dimensions)


def check_values(where, kind, values):
    if not isinstance(values, list) or not values:
        raise ValueError(f"{where}: {kind} takes {DISTRIBUTIONS[kind]['takes']}, got {values!r}")
    if kind == "choice":
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"{where}: choice lists a value twice: {values}")
        return values
    numbers = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values)
    if len(values) != 2 or not numbers:
        raise ValueError(f"{where}: {kind} takes {DISTRIBUTIONS[kind]['takes']}, got {values!r}")
    low, high = values
    if kind == "int" and not all(float(value).is_integer() for value in values):
        raise ValueError(f"{where}: int takes whole numbers, got {values!r}")
    if low >= high:
        raise ValueError(f"{where}: the range [{low}, {high}] is empty or inverted; give [low, high] with low < high")
    if kind == "log_uniform" and low <= 0:
        raise ValueError(f"{where}: a log_uniform range must be above 0, got [{low}, {high}]; "
                         "use uniform for a range that includes 0")
    return [int(low), int(high)] if kind == "int" else [float(low), float(high)]


def grid_size(dimensions):
    return math.prod(len(dimension.grid_values()) for dimension in dimensions)
