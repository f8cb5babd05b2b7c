from _bootstrap import start

start(snakemake)
from convbench.report.build import build_report

sm = snakemake
build_report(
    template=sm.input.template,
    notebook=sm.output.notebook,
    html=sm.output.html,
    parameters={
        # experiments (their histories and figures) are found through summary.csv
        "summary_csv": sm.input.summary,
        "dataset_manifests": list(sm.input.manifests),
        "augmentation_previews": list(sm.params.augmentation_previews),
        "config": dict(sm.params.config),
        "variants": dict(sm.params.variants),
        "benchmark_files": list(sm.params.benchmarks),  # the study's jobs' (results/benchmarks/ may hold others)
        "search_records": list(sm.input.searches),  # each architecture's search, when the study tunes
    },
    show_code=sm.params.show_code,
)
