"""A study's architectures, resolved from its config: the built-in ones, those declared under
`custom_architectures` and those under `transfer_learning`, as one read-only mapping.

The Snakefile resolves it once while it reads the workflow; a training job builds its one
architecture from the declaration it receives as a param (architecture_from_params), so nothing
is registered per process and a job needs no more of the config than its own entry.
"""

from types import MappingProxyType

from .architectures import ARCHITECTURES, Architecture, get_architecture
from .custom import custom_architectures
from .transfer import transfer_architectures


def resolve_architectures(custom=None, transfer=None):
    """{name: Architecture}, read-only: built-in, custom and transfer architectures of the study."""
    custom, transfer = custom_architectures(custom or {}), transfer_architectures(transfer or {})
    both = sorted(set(custom) & set(transfer))
    if both:
        raise ValueError(f"transfer_learning.{both[0]}: {both[0]!r} is also declared under custom_architectures; "
                         "choose another name")
    return MappingProxyType({**ARCHITECTURES, **custom, **transfer})


def architecture_from_params(name, custom=None, transfer=None) -> Architecture:
    """The architecture a job trains: from its declaration (custom or transfer) when it has one,
    else the built-in of that name."""
    if custom:
        return custom_architectures({name: custom})[name]
    if transfer:
        return transfer_architectures({name: transfer})[name]
    return get_architecture(name)


def evaluation_settings(render, architecture: Architecture):
    """What an experiment's metrics and figures depend on besides its model and data: the evaluate
    rule's param, and what the training job stamps its own evaluation with (convbench.evaluate.assessment).
    Only this architecture's layer choices, so that naming a layer for one architecture reruns only its
    evaluations."""
    per_architecture = ("filter_layers", "feature_map_layers")
    return {
        # style only when not the default: studies made before it existed keep their evaluations
        "render": {key: value for key, value in render.items()
                   if key not in per_architecture and (key, value) != ("style", "convbench")},
        "filter_layer": render["filter_layers"].get(architecture.name),
        "feature_map_layers": render["feature_map_layers"].get(architecture.name),
        "about": {"description": architecture.description, "idea": architecture.idea},
    }
