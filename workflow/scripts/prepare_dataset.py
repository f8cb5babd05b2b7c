from _bootstrap import start

start(snakemake)
from convbench.catalog import resolve_datasets
from convbench.datasets import prepare_dataset

sm = snakemake
prepare_dataset(
    resolve_datasets(sm.config["custom_datasets"])[sm.wildcards.dataset],  # the study's catalog, as the Snakefile resolved it
    list(sm.input.raw),
    sm.wildcards.spec,
    sm.output.data,
    sm.output.manifest,
    **sm.params.data,
)
