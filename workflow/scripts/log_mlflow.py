from _bootstrap import start

start(snakemake)
from pathlib import Path

from convbench.mlflow_log import log_experiment

sm = snakemake
log_experiment(sm.params.uri, sm.params.experiment, Path(sm.input.meta).parent, sm.output[0],
               workflow_dir=Path(sm.scriptdir).parent.parent)
