# Figures per experiment: training curves, confusion matrix, learned filters, feature maps.


rule render_figures:
    input:
        unpack(prepared_data),
        model=f"{EXPERIMENT}/model.keras",
        history=f"{EXPERIMENT}/history.csv",
        metrics=f"{EXPERIMENT}/metrics.json",
    output:
        curves=experiment_figure("curves", "Training curves"),
        confusion=experiment_figure("confusion", "Confusion matrices"),
        filters=experiment_figure("filters", "Learned filters"),
        feature_maps=experiment_figure("feature_maps", "Feature maps"),
        manifest=f"{EXPERIMENT}/figures/figures.json",
    params:
        render=config["render"],
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
