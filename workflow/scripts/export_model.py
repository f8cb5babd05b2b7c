from _bootstrap import finish, start

start(snakemake)
from convbench.runtime import configure_tensorflow

sm = snakemake
configure_tensorflow(threads=sm.threads)

from convbench.export import export_experiment
from convbench.prepared import load_prepared

test_images, _ = load_prepared(sm.input.data, sm.input.manifest).scaled("test")
export_experiment(sm.input.model, test_images, sm.params.formats, sm.output[0])
finish()
