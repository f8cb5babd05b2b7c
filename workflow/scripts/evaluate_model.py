from _bootstrap import start

start(snakemake)
from convbench.runtime import configure_tensorflow

sm = snakemake
configure_tensorflow(threads=sm.threads)

from convbench.prepared import load_prepared
from convbench.evaluation import evaluate_experiment

evaluate_experiment(
    sm.input.model, load_prepared(sm.input.data, sm.input.manifest), sm.output.metrics, sm.output.predictions
)
