from _bootstrap import start

start(snakemake)
from convbench.runtime import configure_tensorflow

sm = snakemake
configure_tensorflow(threads=sm.threads)

import numpy as np

from convbench.anatomy import anatomy
from convbench.architectures import load_model
from convbench.atomic import write_json
from convbench.evaluation import evaluate_experiment
from convbench.prepared import load_prepared
from convbench.visualization import render_experiment

w = sm.wildcards
data = load_prepared(sm.input.data, sm.input.manifest)
model = load_model(sm.input.model)  # once, for the metrics and the figures
metrics = evaluate_experiment(sm.input.model, data, sm.output.metrics, sm.output.predictions, model=model)
figures = render_experiment(
    model,
    data,
    sm.input.history,
    metrics,
    np.load(sm.output.predictions),
    sm.output,
    f"{w.arch} on {w.dataset}, seed {w.seed}",
    sm.params.render,
    filter_layer=sm.params.filter_layer,
    feature_map_layers=sm.params.feature_map_layers,
)
write_json(sm.output.figures, figures)
by_hand = {key: value for key, value in figures["by_hand"].items() if key != "path"}
write_json(sm.output.anatomy, {"about": dict(sm.params.about), **anatomy(model, by_hand)})
