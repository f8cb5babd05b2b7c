"""What model.fit runs versus what is trained and saved. The architecture's network is what is saved,
evaluated and compared; what fits may wrap it in ModelAugmentation (training.augment_on: model,
convbench.train.augmentation) and in its auxiliary classifiers (training.auxiliary_classifiers,
convbench.train.auxiliary), which share its weights and are not saved.
"""

import keras

from .augmentation import augments_in_model, augments_on_model, with_model_augmentation
from .auxiliary import AuxiliaryTraining, main_classifier, uses_auxiliary_classifiers


def fitted_model(network, arch, settings, manifest, seed, steps_per_epoch, epochs):
    """The model that fits, around `network` (the architecture as built, itself when nothing wraps it)."""
    auxiliary = uses_auxiliary_classifiers(arch, settings)
    model = arch.auxiliary(network) if auxiliary else network
    model_class = AuxiliaryTraining if auxiliary else keras.Model
    if augments_on_model(settings):
        return with_model_augmentation(model, manifest, settings["augmentation"], seed, steps_per_epoch, epochs,
                                       model_class=model_class)
    return AuxiliaryTraining.around(model) if auxiliary else model


def trained_model(fitted):
    """The network being trained inside what model.fit runs (sharing its weights)."""
    wrapped = isinstance(fitted, AuxiliaryTraining) or augments_in_model(fitted)
    return main_classifier(fitted.layers[-1] if wrapped else fitted)


def auxiliary_outputs(fitted):
    """How many auxiliary classifiers train beside the network (training.auxiliary_classifiers)."""
    return len(fitted.outputs) - 1
