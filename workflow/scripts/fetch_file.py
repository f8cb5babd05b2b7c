from _bootstrap import start

start(snakemake)
from convbench.fetch import fetch_file

fetch_file(snakemake.params.source["urls"], snakemake.params.source["known_hash"], snakemake.output[0])
