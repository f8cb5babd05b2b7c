# convbench: train, evaluate and compare CNN architectures; see README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/track.smk"


rule all:
    input:
        "results/report.html",
        mlflow_runs(),
    default_target: True


# The study's models on new images: snakemake --cores 4 predict --config 'predict={images: path/to/folder}'
rule predict:
    input:
        prediction_files,
