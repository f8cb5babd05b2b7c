from _bootstrap import start

start(snakemake)
from convbench.data.catalog import resolve_datasets
from convbench.data.datasets import prepare_test_split

sm = snakemake
prepare_test_split(
    resolve_datasets(sm.config["custom_datasets"])[sm.wildcards.dataset],  # the study's catalog, as the Snakefile resolved it
    sm.input.test,
    sm.wildcards.spec,
    sm.input.manifest,
    sm.output.data,
    sm.output.manifest,
)
