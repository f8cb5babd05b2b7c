from _bootstrap import start

start(snakemake)
from convbench.datasets import prepare_dataset

sm = snakemake
prepare_dataset(
    sm.wildcards.dataset,
    list(sm.input.raw),
    sm.wildcards.spec,
    sm.output.data,
    sm.output.manifest,
    **sm.params.data,
)
