from _bootstrap import finish, start

start(snakemake)
from convbench.runtime import configure_tensorflow

sm = snakemake
configure_tensorflow(threads=sm.params.threads)

from convbench.cost import write_cost

models = []
for name, path in sm.input.items():
    arch, variant = name.split("/")
    models.append(({"dataset": sm.wildcards.dataset, "architecture": arch, "variant": variant}, path))
write_cost(models, sm.output[0], sm.params.threads, rounds=sm.params.rounds)
finish()
