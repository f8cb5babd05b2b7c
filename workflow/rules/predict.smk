# Use what was trained: the study's models on new images (the Snakefile's `predict` target, not part of `all`).
# Code: workflow/convbench/deploy/predict.py.


rule predict_images:
    input:
        model=f"{EXPERIMENT}/model.keras",
        meta=f"{EXPERIMENT}/train_meta.json",
    output:
        f"results/predictions/{EXPERIMENT_ID}.csv",
    params:
        images=lambda wildcards: config["predict"]["images"],
        top_k=config["predict"]["top_k"],
        skip_bad=config["predict"]["skip_bad"],
        fingerprint=images_fingerprint,
    log:
        f"results/logs/predict/{EXPERIMENT_ID}.log",
    benchmark:
        f"results/benchmarks/predict/{EXPERIMENT_ID}.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=asked_mb("predict_images", 2000),
        runtime=30,
        gpu=GPUS_PER_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/predict_images.py"
