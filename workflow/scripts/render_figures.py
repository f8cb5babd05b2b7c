from _bootstrap import start

start(snakemake)
from convbench.runtime import configure_tensorflow

sm = snakemake
configure_tensorflow(threads=sm.threads)

import numpy as np

from convbench.atomic import read_json, write_json
from convbench.prepared import load_prepared
from convbench.architectures import load_model
from convbench.visualization import render_experiment

w = sm.wildcards
figures = render_experiment(
    load_model(sm.input.model),
    load_prepared(sm.input.data, sm.input.manifest),
    sm.input.history,
    read_json(sm.input.metrics),
    np.load(sm.input.predictions),
    sm.output,
    f"{w.arch} on {w.dataset}, seed {w.seed}",
    sm.params.render,
    filter_layer=sm.params.filter_layer,
)
write_json(sm.output.manifest, figures)
