from _bootstrap import finish, start

start(snakemake)
import os

sm = snakemake
# Before Keras is imported (it reads KERAS_HOME once): pretrained weights come from resources/, never the network.
os.environ["KERAS_HOME"] = os.path.abspath(sm.params.keras_home)
from convbench.runtime import configure_tensorflow, set_precision

seed = int(sm.wildcards.seed)
strategy = configure_tensorflow(threads=sm.threads, seed=seed, deterministic=sm.params.training["deterministic"])

from convbench.assessment import experiment_title, stage_assessment
from convbench.prepared import fits_in_memory, load_prepared
from convbench.study import architecture_from_params, evaluation_settings
from convbench.training import train_experiment

architecture = architecture_from_params(sm.wildcards.arch, custom=sm.params.custom, transfer=sm.params.transfer)
_, precision_reason = set_precision(sm.params.training["precision"], architecture.bf16_keeps_accuracy)
data = load_prepared(sm.input.data, sm.input.manifest)


def evaluate_while_in_memory(model):
    """The evaluate job's work, done here where TensorFlow runs and the model is loaded; that job
    adopts it if nothing it depends on changed (convbench.assessment). Evaluation settings are read
    from the config, not params: a figure setting must not retrain."""
    stage_assessment(model, sm.output.model, data, sm.output.history, sm.input.manifest,
                     evaluation_settings(sm.config["render"], architecture), experiment_title(sm.wildcards))


train_experiment(
    data,
    architecture,
    seed=seed,
    settings=dict(sm.params.training),
    strategy=strategy,
    model_path=sm.output.model,
    history_path=sm.output.history,
    meta_path=sm.output.meta,
    checkpoint_dir=sm.params.checkpoint_dir,
    weights=sm.params.transfer and sm.params.transfer["weights"],
    variant=sm.wildcards.variant,
    variant_overrides=dict(sm.params.variant),
    precision_reason=precision_reason,
    # read from the config, not params: how a run is watched does not change what it trains
    tensorboard={"directory": sm.params.tensorboard_dir, **sm.config["tensorboard"]} if sm.config["tensorboard"]["enabled"] else None,
    on_saved=evaluate_while_in_memory,
    checkpoint_interval=sm.config["checkpoints"]["min_interval_s"],  # config, not params: it changes no result
    in_memory=fits_in_memory(data, sm.resources.mem_mb),  # or read per batch from the shards: the same weights
)
finish()
