# The comparison report: a papermill-executed notebook rendered to self-contained HTML.
# Code: workflow/convbench/report.


rule build_report:
    input:
        template="workflow/notebooks/report.ipynb",
        summary="results/summary.csv",
        histories=study_files(f"{EXPERIMENT}/history.csv"),
        figures=study_files(f"{EXPERIMENT}/figures/figures.json"),
        searches=search_records,
        manifests=prepared_manifests(),
        prepared=[manifest.removesuffix(".json") for manifest in prepared_manifests()],
        test_splits=prepared_test_splits(),  # test splits prepared apart: the galleries' test images
        augmentation_previews=[preview["path"] for preview in augmentation_previews()],
        exports=study_files(f"{EXPERIMENT}/export") if config["export"] else [],
    output:
        notebook="results/report/report.ipynb",
        html="results/report.html",
    params:
        show_code=config["report"]["show_code"],
        config=results_config(config),  # not resources: asking for a GPU changes no result
        variants=VARIANTS,
        augmentation_previews=augmentation_previews(),
        benchmarks=study_benchmarks,
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    threads: 1
    resources:
        mem_mb=asked_mb("build_report", 2000),
        runtime=15,
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/build_report.py"
