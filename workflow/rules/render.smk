# Figures per experiment: curves, confusion matrix, filters, feature maps, Grad-CAM, misclassified images.


rule render_figures:
    input:
        unpack(prepared_data),
        model=f"{EXPERIMENT}/model.keras",
        history=f"{EXPERIMENT}/history.csv",
        metrics=f"{EXPERIMENT}/metrics.json",
        predictions=f"{EXPERIMENT}/test_predictions.npz",
    output:
        curves=experiment_figure("curves", "Training curves"),
        confusion=experiment_figure("confusion", "Confusion matrices"),
        filters=experiment_figure("filters", "Learned filters"),
        feature_maps=experiment_figure("feature_maps", "Feature maps"),
        gradcam=experiment_figure("gradcam", "Grad-CAM"),
        misclassified=experiment_figure("misclassified", "Misclassified examples"),
        manifest=f"{EXPERIMENT}/figures/figures.json",
    params:
        render=config["render"],
        filter_layer=lambda wildcards: config["render"]["filter_layers"].get(wildcards.arch),
    log:
        f"results/logs/render/{EXPERIMENT_ID}.log",
    benchmark:
        f"results/benchmarks/render/{EXPERIMENT_ID}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    conda:
        "../../envs/render.yaml"
    script:
        "../scripts/render_figures.py"


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
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/render.yaml"
    script:
        "../scripts/preview_augmentation.py"
