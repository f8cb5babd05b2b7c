"""Which ImageNet weights a study's transfer architectures need: the file depends on the model's input
size (MobileNetV2), so the models are asked; the download itself is convbench.data.fetch's."""

from ..base.config import experiment_settings
from ..data.catalog import resolve_datasets
from .architectures import input_spec, model_input_size
from .transfer import transfer_architectures, weights_source


def transfer_weights(config, dataset, arch, variant_overrides, catalog=None):
    """(file, URLs, known hash) of the ImageNet weights a transfer experiment needs, or None.
    The file depends on the model's input size for MobileNetV2. `catalog`: the study's resolved
    datasets (resolved from the config when not given)."""
    spec = config["transfer_learning"].get(arch)
    if not spec or spec["weights"] != "imagenet":
        return None
    architecture = transfer_architectures({arch: spec})[arch]
    catalog = catalog or resolve_datasets(config["custom_datasets"])
    height, _, channels = catalog[dataset].image_shape
    requested = experiment_settings(config, dataset, arch, variant_overrides).get("input_size")
    return weights_source(spec, model_input_size(architecture, input_spec(architecture, height, channels)[0], requested))


def imagenet_weights_sources(config, variants, catalog=None):
    """{file name: (URLs, known hash)} of the ImageNet weights the study's transfer experiments need.
    `catalog`: the study's resolved datasets (resolved from the config, once, when not given)."""
    sources = {}
    for arch in config["architectures"]:
        for dataset in config["datasets"]:
            for overrides in variants.values():
                if arch in config["transfer_learning"]:
                    catalog = catalog or resolve_datasets(config["custom_datasets"])
                source = transfer_weights(config, dataset, arch, overrides, catalog)
                if source:
                    sources[source[0]] = source[1:]
    return sources
