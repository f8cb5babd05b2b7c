# Test-split metrics per experiment, and one tidy summary table for the whole study.


rule evaluate_model:
    input:
        unpack(prepared_data),
        model=f"{EXPERIMENT}/model.keras",
    output:
        metrics=f"{EXPERIMENT}/metrics.json",
        predictions=f"{EXPERIMENT}/test_predictions.npz",
    log:
        f"results/logs/evaluate/{EXPERIMENT_ID}.log",
    benchmark:
        f"results/benchmarks/evaluate/{EXPERIMENT_ID}.tsv"
    threads: config["resources"]["train_threads"]  # latency and throughput are measured with these
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=GPUS_PER_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/evaluate_model.py"


# A checkpoint: `predict` with best_only reads the table to choose its experiments.
checkpoint summarize:
    input:
        metrics=experiment_files(f"{EXPERIMENT}/metrics.json"),
        meta=experiment_files(f"{EXPERIMENT}/train_meta.json"),
        benchmarks=experiment_files(f"results/benchmarks/train/{EXPERIMENT_ID}.tsv"),
    output:
        "results/summary.csv",
    params:
        varied_settings=varied_settings(VARIANTS),  # one column each: what the variants changed
    log:
        "results/logs/summarize.log",
    benchmark:
        "results/benchmarks/summarize.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/summarize.py"
