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
        "results/logs/render/{dataset}/{arch}/seed{seed}.log",
    benchmark:
        "results/benchmarks/render/{dataset}/{arch}/seed{seed}.tsv"
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
        report("results/figures/{dataset}/augmentation_preview.png", category="Augmentation preview",
               caption="../report/augmentation_preview.rst"),
    params:
        augmentation=lambda wildcards: dataset_settings(config, wildcards.dataset)["augmentation"],
        seed=config["data"]["split_seed"],
    log:
        "results/logs/preview_augmentation/{dataset}.log",
    benchmark:
        "results/benchmarks/preview_augmentation/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/render.yaml"
    script:
        "../scripts/preview_augmentation.py"
