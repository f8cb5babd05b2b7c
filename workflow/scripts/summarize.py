from _bootstrap import start

start(snakemake)
from convbench.summary import write_summary

sm = snakemake
write_summary(sm.input.metrics, sm.input.meta, sm.input.benchmarks, sm.input.cost, sm.output[0], sm.params.varied_settings)
