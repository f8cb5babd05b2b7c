"""Learning-rate schedules beyond Keras' own: linear warm-up in front of any schedule.

Registered with Keras' serialization so a saved model's optimizer (checkpoints, model.keras)
loads again; convbench.models.architectures.load_model imports this module for that reason.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="convbench")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """The rate rises linearly to `after`'s value over `warmup_steps` (step s: (s + 1) / warmup_steps
    of it), then follows `after` (a schedule of the absolute step, or a constant)."""

    def __init__(self, after, warmup_steps):
        self.after = after
        self.warmup_steps = int(warmup_steps)

    def _after(self, step):
        return self.after(step) if callable(self.after) else ops.convert_to_tensor(self.after, "float32")

    def __call__(self, step):
        step = ops.cast(step, "float32")
        target = self._after(ops.convert_to_tensor(float(self.warmup_steps)))
        rising = target * (step + 1.0) / float(self.warmup_steps)
        return ops.where(step < self.warmup_steps, rising, self._after(step))

    def get_config(self):
        after = keras.saving.serialize_keras_object(self.after) if callable(self.after) else self.after
        return {"after": after, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        after = config["after"]
        return cls(keras.saving.deserialize_keras_object(after) if isinstance(after, dict) else after,
                   config["warmup_steps"])


def step_milestones(settings, epochs):
    """schedule: step's milestones (epochs): the settings', else after 50 % and 75 % of training."""
    return sorted(settings.get("milestones") or {max(1, round(epochs * 0.5)), max(1, round(epochs * 0.75))})


def learning_rate_schedule(settings, learning_rate, schedule, steps_per_epoch, epochs):
    """The rate, or a schedule of the optimizer's step count (saved with every checkpoint, so a
    resumed run continues where it stopped)."""
    warmup = settings.get("warmup_epochs") or 0
    warmup_steps, total_steps = warmup * steps_per_epoch, epochs * steps_per_epoch
    if schedule == "cosine":
        if warmup:
            return keras.optimizers.schedules.CosineDecay(0.0, total_steps - warmup_steps,
                                                          warmup_target=learning_rate, warmup_steps=warmup_steps)
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total_steps)
    if schedule == "step":
        gamma = settings.get("gamma", 0.1)
        milestones = step_milestones(settings, epochs)
        # the first step of epoch m + 1 (0-based step m x steps_per_epoch) runs at the lowered rate
        after = keras.optimizers.schedules.PiecewiseConstantDecay(
            [m * steps_per_epoch - 1 for m in milestones], [learning_rate * gamma**i for i in range(len(milestones) + 1)])
    elif schedule in ("constant", "plateau"):
        after = learning_rate
    else:
        raise ValueError(f"unknown schedule {schedule!r}; use constant, cosine, step or plateau")
    return LinearWarmup(after, warmup_steps) if warmup else after
