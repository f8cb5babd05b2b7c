# Each finished experiment as an MLflow run (`tracking: {mlflow: {uri, experiment}}`; off by default).
# Code: workflow/convbench/deploy/mlflow_log.py.

# Runs where Snakemake runs (the login node under SLURM): it reaches the tracking server, compute nodes may not.
localrules:
    log_mlflow,


# A retrained experiment logs a new run; an untouched one logs nothing. The run's id lands in mlflow_run.json.
rule log_mlflow:
    input:
        model=f"{EXPERIMENT}/model.keras",
        meta=f"{EXPERIMENT}/train_meta.json",
        metrics=f"{EXPERIMENT}/metrics.json",
        history=f"{EXPERIMENT}/history.csv",
        figures=f"{EXPERIMENT}/figures/figures.json",
    output:
        f"{EXPERIMENT}/mlflow_run.json",
    params:
        uri=lambda wildcards: config["tracking"]["mlflow"]["uri"],
        experiment=lambda wildcards: config["tracking"]["mlflow"]["experiment"],
    log:
        f"results/logs/log_mlflow/{EXPERIMENT_ID}.log",
    benchmark:
        f"results/benchmarks/log_mlflow/{EXPERIMENT_ID}.tsv"
    threads: 1
    resources:
        mem_mb=asked_mb("log_mlflow", 1000),
        runtime=10,
    conda:
        "../../envs/mlflow.yaml"
    script:
        "../scripts/log_mlflow.py"
