from _bootstrap import start

start(snakemake)
from convbench.tune.trial import train_isolated
from convbench.tune.warm_start import starter

sm = snakemake
train_isolated(
    {
        "dataset": sm.wildcards.dataset, "arch": sm.wildcards.arch, "variant": sm.wildcards.variant,
        "seed": int(sm.wildcards.seed), "threads": sm.threads, "mem_mb": sm.resources.mem_mb,
        "data": sm.input.data, "manifest": sm.input.manifest, "keras_home": sm.params.keras_home,
        "settings": dict(sm.params.training), "variant_overrides": dict(sm.params.variant),
        "custom": sm.params.custom, "transfer": sm.params.transfer, "checkpoint_dir": sm.params.checkpoint_dir,
        # read from the config, not params: how a run is watched or checkpointed does not change what it trains
        "tensorboard": ({"directory": sm.params.tensorboard_dir, **sm.config["tensorboard"]}
                        if sm.config["tensorboard"]["enabled"] else None),
        "checkpoint_interval": sm.config["checkpoints"]["min_interval_s"],
    },
    sm.output.history,
    sm.output.meta,
    # read from the config, not params: how a trial's process starts does not change what it trains
    warm_start=starter(sm.config["warm_start"]["trials"], sm.config["warm_start"]["idle_s"], sm.resources,
                       sm.params.keras_home),
)
