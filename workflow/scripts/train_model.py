from _bootstrap import start

start(snakemake)
from convbench.runtime import configure_tensorflow

sm = snakemake
seed = int(sm.wildcards.seed)
strategy = configure_tensorflow(threads=sm.threads, seed=seed, deterministic=sm.params.training["deterministic"])

from convbench.architectures import register_custom
from convbench.datasets import load_prepared
from convbench.training import train_experiment

if sm.params.custom:
    register_custom({sm.wildcards.arch: sm.params.custom})
train_experiment(
    load_prepared(sm.input.data, sm.input.manifest),
    sm.wildcards.arch,
    seed=seed,
    settings=dict(sm.params.training),
    strategy=strategy,
    model_path=sm.output.model,
    history_path=sm.output.history,
    meta_path=sm.output.meta,
    checkpoint_dir=sm.params.checkpoint_dir,
)
