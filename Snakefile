# convbench: train, evaluate and compare CNN architectures; see README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/track.smk"


onstart:
    job_errors.clear()


onsuccess:
    remove_empty_folders(CHECKPOINTS)  # a finished experiment's checkpoint folder goes; here no job is creating one
    print_notices()


onerror:
    remove_empty_folders(CHECKPOINTS)
    print_notices()
    failed = job_errors.summary()
    if failed:  # like a config error: one line per job naming the file and the fix; the tracebacks are in the logs
        print(f"\nconvbench: {len(failed)} job(s) failed:", *failed, sep="\n  ", file=sys.stderr)


rule all:
    input:
        "results/report.html",
        experiment_outputs(rules.train_model, rules.evaluate_model, *[rules.export_model] * bool(config["export"])),
        mlflow_runs(),
        # a search's chosen recipes on the confirmation seeds, once the searches end
        tuned=lambda wildcards: tuned_outputs(rules.train_model, rules.evaluate_model,
                                              *[rules.export_model] * bool(config["export"]),
                                              *[rules.log_mlflow] * bool(config["tracking"].get("mlflow"))),
    default_target: True


# The study's models on new images: snakemake --cores 4 predict --config 'predict={images: path/to/folder}'
rule predict:
    input:
        prediction_files,
