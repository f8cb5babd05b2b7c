# Train one model per dataset x architecture x variant x seed (a search's trials: train_trial); fetch the pretrained weights transfer learning starts from.
# Code: workflow/convbench/train (models: convbench/models; a trial's isolation: convbench/tune/trial.py).

# Downloads run where Snakemake runs (the login node under SLURM): compute nodes never need the internet.
localrules:
    fetch_weights,


# Keras' own cache layout (KERAS_HOME/models/<file>): training jobs point KERAS_HOME at
# resources/keras, so keras.applications finds the verified file and never downloads.
rule fetch_weights:
    output:
        f"{KERAS_HOME}/models/{{filename}}",
    params:
        known_hash=weights_hash,
    log:
        "results/logs/fetch_weights/{filename}.log",
    benchmark:
        "results/benchmarks/fetch_weights/{filename}.tsv"
    threads: 1
    resources:
        mem_mb=asked_mb("fetch_weights", 500),
        runtime=60,
    conda:
        "../../envs/datasets.yaml"
    script:
        "../scripts/fetch_file.py"



# Every experiment but a search's trials (rule train_trial: a trial that fails is a result, not a failed job).
rule train_model:
    wildcard_constraints:
        variant=NOT_A_TRIAL,
    input:
        unpack(prepared_data),
        weights=weights_input,
        search=search_gate,  # a search's chosen recipe: after the step that defines it
    output:
        model=f"{EXPERIMENT}/model.keras",
        history=f"{EXPERIMENT}/history.csv",
        meta=f"{EXPERIMENT}/train_meta.json",
    params:
        training=training_settings,
        variant=variant_overrides,  # recorded in train_meta.json; the settings above already include it
        custom=lambda wildcards: config["custom_architectures"].get(wildcards.arch),
        transfer=lambda wildcards: config["transfer_learning"].get(wildcards.arch),
        keras_home=KERAS_HOME,
        # Per-epoch checkpoints live outside the outputs (Snakemake deletes a failed job's outputs),
        # so a killed or preempted job resumes at its next epoch when rerun.
        checkpoint_dir=f"{CHECKPOINTS}/{EXPERIMENT_ID}",
        # Written live while the job trains (tensorboard --logdir results/tensorboard); not an output,
        # so a failed job's curves stay for inspection. A rerun starts them again.
        tensorboard_dir=f"results/tensorboard/{EXPERIMENT_ID}",
    log:
        f"results/logs/train/{EXPERIMENT_ID}.log",
    benchmark:
        f"results/benchmarks/train/{EXPERIMENT_ID}.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=asked_mb("train_model", config["resources"]["train_mem_mb"], estimate=training_need),
        model_mb=model_estimate,  # the job records its peak with it: a peak from another batch size is stale
        runtime=config["resources"]["train_runtime_min"],
        gpu=GPUS_PER_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_model.py"


# One trial of a search: an experiment trained with the search seed, scored on its validation split only. Its
# training runs in a child process (convbench.tune.trial): a trial that runs out of memory or crashes is recorded
# as failed, with its reason, and the search goes on. Its params are train_model's, so trials trained before this
# rule existed are kept. No model is kept: only the trial's scores count.
rule train_trial:
    wildcard_constraints:
        variant=TRIAL_VARIANT.pattern,
    input:
        unpack(prepared_data),
        weights=weights_input,
        search=search_gate,  # after the step that proposed it
    output:
        history=f"{EXPERIMENT}/history.csv",
        meta=f"{EXPERIMENT}/train_meta.json",
    params:
        training=training_settings,
        variant=variant_overrides,
        custom=lambda wildcards: config["custom_architectures"].get(wildcards.arch),
        transfer=lambda wildcards: config["transfer_learning"].get(wildcards.arch),
        keras_home=KERAS_HOME,
        checkpoint_dir=f"{CHECKPOINTS}/{EXPERIMENT_ID}",  # as train_model's: a killed job resumes
        tensorboard_dir=f"results/tensorboard/{EXPERIMENT_ID}",
    log:
        f"results/logs/train/{EXPERIMENT_ID}.log",
    benchmark:
        f"results/benchmarks/train/{EXPERIMENT_ID}.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=asked_mb("train_trial", config["resources"]["train_mem_mb"], estimate=training_need),
        model_mb=model_estimate,
        runtime=config["resources"]["train_runtime_min"],
        gpu=GPUS_PER_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_trial.py"
