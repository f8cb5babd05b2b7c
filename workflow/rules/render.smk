# The augmentation preview: each variant's augmentation drawn on training images of each dataset.
# (An experiment's own figures are drawn by evaluate_model, evaluate.smk.)
# Code: workflow/convbench/evaluate/visualization.py (augmentation: convbench/train/training.py).


rule preview_augmentation:
    input:
        unpack(preview_data),
    output:
        report("results/figures/{dataset}/{variant}/augmentation_preview.png", category="Augmentation preview",
               subcategory="{dataset}", caption="../report/augmentation_preview.rst", labels={"variant": "{variant}"}),
    params:
        augmentation=lambda wildcards: variant_augmentation(wildcards.dataset, wildcards.variant),
        seed=config["data"]["split_seed"],
    log:
        "results/logs/preview_augmentation/{dataset}/{variant}.log",
    benchmark:
        "results/benchmarks/preview_augmentation/{dataset}/{variant}.tsv"
    threads: 1
    resources:
        mem_mb=asked_mb("preview_augmentation", 2000),
        runtime=10,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/preview_augmentation.py"
