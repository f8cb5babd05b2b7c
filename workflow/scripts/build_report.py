from _bootstrap import start

start(snakemake)
from convbench.report import build_report

sm = snakemake
build_report(
    template=sm.input.template,
    notebook=sm.output.notebook,
    html=sm.output.html,
    parameters={
        "summary_csv": sm.input.summary,
        "histories": list(sm.input.histories),
        "figure_manifests": list(sm.input.figures),
        "dataset_manifests": list(sm.input.manifests),
        "augmentation_previews": list(sm.input.augmentation_previews),
        "config": dict(sm.params.config),
    },
    show_code=sm.params.show_code,
)
