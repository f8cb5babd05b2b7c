from _bootstrap import start

start(snakemake)
from convbench.datasets import prepare_dataset, register_custom_datasets

sm = snakemake
register_custom_datasets(sm.config["custom_datasets"])
prepare_dataset(
    sm.wildcards.dataset,
    list(sm.input.raw),
    sm.wildcards.spec,
    sm.output.data,
    sm.output.manifest,
    **sm.params.data,
)
