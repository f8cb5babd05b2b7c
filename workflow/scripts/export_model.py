from _bootstrap import finish, start

start(snakemake)
from convbench.runtime import configure_tensorflow

sm = snakemake
configure_tensorflow(threads=sm.threads)

import numpy as np

from convbench.export import CHECK_IMAGES, export_experiment
from convbench.prepared import load_prepared

data = load_prepared(sm.input.data, sm.input.manifest)
test_images, _ = data.scaled("test", np.arange(min(CHECK_IMAGES, data.count("test"))))  # the ones the checks use
export_experiment(sm.input.model, test_images, sm.params.formats, sm.output[0])
finish()
