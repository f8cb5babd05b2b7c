# Test-split metrics and figures per experiment, and one tidy summary table for the whole study.
# Code: workflow/convbench/evaluate.


# One job per experiment for the metrics and the figures. The training job already made them while its
# model was in memory (TensorFlow's start costs ~5 s, more than evaluating a small model); this job
# adopts them without starting TensorFlow unless its settings changed since (convbench.evaluate.assessment).
rule evaluate_model:
    input:
        unpack(evaluated_data),  # with a test split prepared apart, if the dataset has one
        model=f"{EXPERIMENT}/model.keras",
        history=f"{EXPERIMENT}/history.csv",
    output:
        **evaluation_outputs(),
    params:
        settings=experiment_evaluation_settings,
    log:
        f"results/logs/evaluate/{EXPERIMENT_ID}.log",
    benchmark:
        f"results/benchmarks/evaluate/{EXPERIMENT_ID}.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=asked_mb("evaluate_model", 2000),
        runtime=30,
        gpu=GPUS_PER_JOB,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/evaluate_model.py"


# Latency and throughput of every model of a dataset, in one job that runs alone once all of them are
# trained, interleaved over rounds: measured inside each evaluation job, the figures depended on
# whatever else ran at that moment (convbench.evaluate.cost).
rule measure_cost:
    input:
        unpack(cost_subjects),
    output:
        "results/cost/{dataset}.csv",
    params:
        rounds=config["report"]["cost_rounds"],
        threads=config["resources"]["train_threads"],  # TensorFlow's threads: as in training and evaluation
    log:
        "results/logs/measure_cost/{dataset}.log",
    benchmark:
        "results/benchmarks/measure_cost/{dataset}.tsv"
    threads: alone_threads
    resources:
        mem_mb=asked_mb("measure_cost", 4000, estimate=cost_need),
        runtime=60,
        gpu=GPUS_PER_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/measure_cost.py"


# A checkpoint: `predict` with best_only reads the table to choose its experiments.
checkpoint summarize:
    input:
        metrics=study_files(f"{EXPERIMENT}/metrics.json"),
        meta=study_files(f"{EXPERIMENT}/train_meta.json"),
        benchmarks=study_files(f"results/benchmarks/train/{EXPERIMENT_ID}.tsv"),
        cost=expand("results/cost/{dataset}.csv", dataset=config["datasets"]),
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
        mem_mb=asked_mb("summarize", 500),
        runtime=5,
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/summarize.py"
