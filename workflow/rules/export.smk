# Deployment formats of every trained model (`export:` in the config; none by default), each checked
# against the Keras model in its job (convbench.deploy.export).
# Code: workflow/convbench/deploy/export.py.


rule export_model:
    input:
        unpack(evaluated_data),  # with a test split prepared apart, if the dataset has one
        model=f"{EXPERIMENT}/model.keras",
    output:
        directory(f"{EXPERIMENT}/export"),
    params:
        formats=config["export"],
    log:
        f"results/logs/export/{EXPERIMENT_ID}.log",
    benchmark:
        f"results/benchmarks/export/{EXPERIMENT_ID}.tsv"
    threads: 1
    resources:
        mem_mb=asked_mb("export_model", 4000),
        runtime=30,
    conda:
        "../../envs/export.yaml"
    script:
        "../scripts/export_model.py"
