"""Training with an architecture's auxiliary classifiers (training.auxiliary_classifiers), as their
authors did: GoogLeNet's two (Szegedy et al. 2015, Section 5) add 0.3 x their softmax loss to the main
classifier's while training and are discarded at inference.

What convbench compares stays the main classifier's: the validation loss and accuracy (what early
stopping, the plateau schedule and every verdict read) are the main output's alone, and so are the
history's `loss` and `accuracy`; the auxiliary classifiers' weighted loss, which training also minimises,
is its own column, `auxiliary_loss` (and `val_auxiliary_loss`, their loss on the validation split).
"""

import keras
import tensorflow as tf

# Section 5: "their loss gets added to the total loss of the network with a discount weight"
AUXILIARY_LOSS_WEIGHT = 0.3


def uses_auxiliary_classifiers(arch, settings):
    """Whether this architecture trains with auxiliary classifiers under these settings (a variant's
    setting applies to the architectures that have them)."""
    return bool(settings.get("auxiliary_classifiers")) and arch.auxiliary is not None


@keras.saving.register_keras_serializable(package="convbench")
class AuxiliaryTraining(keras.Model):
    """A functional model whose outputs are [main, *auxiliary] softmaxes, trained on
    main loss + AUXILIARY_LOSS_WEIGHT x the auxiliary ones, scored on the main output only.
    (*args, **kwargs: Keras revives a Model subclass with this signature as a functional model.)"""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.main_loss_tracker = keras.metrics.Mean(name="main_loss")
        self.auxiliary_loss_tracker = keras.metrics.Mean(name="auxiliary_loss")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        main, *auxiliary = y_pred
        loss = super().compute_loss(x, y, main, sample_weight, training=training)
        extra = AUXILIARY_LOSS_WEIGHT * tf.add_n([self._compile_loss(y, output, sample_weight) for output in auxiliary])
        # compiled losses are divided by the replicas under tf.distribute; the trackers take them whole
        replicas, images = tf.distribute.get_strategy().num_replicas_in_sync, tf.shape(main)[0]
        self.main_loss_tracker.update_state(loss * replicas, sample_weight=images)
        self.auxiliary_loss_tracker.update_state(extra * replicas, sample_weight=images)
        # evaluation scores the main classifier alone, as at inference
        return loss + tf.cast(extra, loss.dtype) if training else loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, y_pred[0], sample_weight)

    def get_metrics_result(self):
        """`loss` the main classifier's, as for any other architecture (in training too, where what is
        minimised adds `auxiliary_loss`, the auxiliary classifiers' weighted loss)."""
        logs = super().get_metrics_result()
        logs["loss"] = logs.pop("main_loss")
        return logs

    @classmethod
    def around(cls, model):
        """`model` (Model(inputs, [main, *auxiliary])) as the one layer behind its own inputs."""
        inputs = keras.Input(model.input_shape[1:], dtype=model.inputs[0].dtype, name="images")
        return cls(inputs, model(inputs), name=f"{model.name}_with_auxiliary_classifiers")


def main_classifier(model):
    """The network to save and evaluate: `model` itself, or with its auxiliary outputs left out (sharing
    every weight)."""
    if len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs, model.outputs[0], name=model.name)
