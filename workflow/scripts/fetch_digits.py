from _bootstrap import start

start(snakemake)
from convbench.datasets import export_digits

export_digits(snakemake.output[0])
