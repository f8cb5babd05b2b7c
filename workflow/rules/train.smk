# Train one model per dataset x architecture x seed.


rule train_model:
    input:
        unpack(prepared_data),
    output:
        model=f"{EXPERIMENT}/model.keras",
        history=f"{EXPERIMENT}/history.csv",
        meta=f"{EXPERIMENT}/train_meta.json",
    params:
        training=training_settings,
        custom=lambda wildcards: config["custom_architectures"].get(wildcards.arch),
        # Per-epoch checkpoints live outside the outputs (Snakemake deletes a failed job's outputs),
        # so a killed or preempted job resumes at its next epoch when rerun.
        checkpoint_dir="results/checkpoints/{dataset}/{arch}/seed{seed}",
    log:
        "results/logs/train/{dataset}/{arch}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{dataset}/{arch}/seed{seed}.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime_min"],
        gpu=config["resources"]["gpu"],
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_model.py"
