# Config validation, wildcard constraints and the input functions shared by every stage.
# Code: workflow/convbench/base (config, validation, devices) and each stage's tables.
import functools
import os
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

# The rules read the package's tables from the workflow's own copy (no install needed here).
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
from convbench.base import job_errors, lock, snakemake_hooks
from convbench.base.atomic import remove_empty_folders
from convbench.base.config import (
    augmentation_on,
    coerce_cli_scalars,
    dataset_settings,
    experiment_settings,
    merge_settings,
    results_config,
    study_variants,
    varied_settings,
)
from convbench.base.devices import local_resource_limits, visible_gpu_count
from convbench.base.memory import asked_mb, configure_limit, memory_limit
from convbench.base.validation import check_recipe, validate_config
from convbench.data.catalog import (check_dataset_names, raw_inputs, remote_file, resolve_datasets, separate_test,
                                   spec_name)
from convbench.data.formats import file_digest, folder_fingerprint
from convbench.data.sharing import (plan_prepared, preparation_constraint, preparation_key, prepared_state,
                                   rule_prepared_dir, test_split_key)
from convbench.evaluate.figures import EVALUATION_FILES, FIGURES
from convbench.models.architectures import check_auxiliary_classifiers, check_input_size, check_names, input_spec, model_input_size
from convbench.models.footprints import stored_footprints, training_need_mb
from convbench.models.custom import check_custom
from convbench.models.study import evaluation_settings, resolve_architectures
from convbench.models.transfer import KERAS_HOME, check_transfer, weights_source
from convbench.models.weights import imagenet_weights_sources, transfer_weights
from convbench.report.summary import best_experiments, read_summary
from convbench.tune.checks import check_search, plan_lines, search_enabled

SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"


def check_study():
    """Every config check, before any job; returns the study's datasets (read-only {name: DatasetInfo}),
    architectures (read-only {name: Architecture}) and variants ({name: overrides}, named variants first, then the sweep's points)."""
    validate_config(config, yaml.safe_load(SCHEMA.read_text()), lambda checked: validate(checked, str(SCHEMA)))
    variants = study_variants(config)
    datasets = resolve_datasets(config["custom_datasets"])
    architectures = resolve_architectures(config["custom_architectures"], config["transfer_learning"])
    check_dataset_names(config["datasets"], datasets)
    check_names("architectures", config["architectures"], architectures)
    check_names("architecture_options", config["architecture_options"], architectures)
    check_dataset_names(config["dataset_options"], datasets, key="dataset_options")
    for name in config["custom_architectures"]:
        check_custom(architectures[name])  # imports Keras, only for studies that declare architectures
    check_render_layers(config["render"], architectures)
    for name, spec in config["transfer_learning"].items():
        for dataset in config["datasets"]:
            for overrides in variants.values():
                check_transfer(name, spec, config["data"], experiment_settings(config, dataset, name, overrides))
    for dataset in config["datasets"]:
        for name in config["architectures"]:
            for variant, overrides in variants.items():
                settings, where = experiment_settings(config, dataset, name, overrides), f"{name} on {dataset}, variant {variant}"
                check_input_size(architectures[name], settings.get("input_size"), where)
                check_auxiliary_classifiers(architectures, config["architectures"], settings, where)
                check_recipe(settings, where)
    baseline = next(iter(variants))
    check_search(config, variants, yaml.safe_load(SCHEMA.read_text())["$defs"]["training_settings"],
                 lambda dataset, arch: experiment_settings(config, dataset, arch, variants[baseline])["epochs"])
    return datasets, architectures, variants


def print_notices():
    """What succeeded jobs must tell the user (a GPU TensorFlow could not use), once each, at the end of the run."""
    for line in job_errors.notices():
        print(f"convbench: {line}", file=sys.stderr)
    differences = lock.drift()  # this run's packages (every job's, without --sdm conda) against requirements.lock
    if differences:
        print(f"convbench: packages differ from {lock.LOCK_FILE.name}: {lock.describe_drift(differences)} "
              "(reinstall from it, or `python envs/lock.py sync` after changing pyproject.toml)", file=sys.stderr)


def check_render_layers(render, architectures):
    """The layers render.filter_layers and render.feature_map_layers name exist in the study's
    architectures (each named one built once), before any job."""
    for section in ("filter_layers", "feature_map_layers"):
        check_names(f"render.{section}", render[section], architectures)
    for name in sorted((set(render["filter_layers"]) | set(render["feature_map_layers"])) & set(config["architectures"])):
        from convbench.models.anatomy import check_layer_names  # imports Keras: only for studies that name layers

        try:
            check_layer_names(architectures[name], render["filter_layers"].get(name), render["feature_map_layers"].get(name))
        except ValueError as error:
            raise ValueError(f"render, {name}: {error}") from None


config.update(coerce_cli_scalars(config))
try:
    DATASETS, ARCHITECTURES, VARIANTS = check_study()
except ValueError as error:
    # One short paragraph, no traceback and no schema dump: the key, the value, what is allowed.
    sys.exit(f"Error in the config: {error}")
if workflow.is_main_process:  # failed jobs' reasons, no retries of errors that recur (convbench.base.snakemake_hooks)
    snakemake_hooks.install()
BASELINE = next(iter(VARIANTS))
SEARCH = search_enabled(config)
if SEARCH and workflow.is_main_process:  # what each search spends, before any job (a dry run shows it too)
    for line in plan_lines(config, lambda dataset, arch: experiment_settings(config, dataset, arch, VARIANTS[BASELINE])["epochs"]):
        print(f"convbench: {line}", file=sys.stderr)
if len(VARIANTS) > 1 and workflow.is_main_process:
    print(f"convbench: baseline variant {next(iter(VARIANTS))} (set `baseline:` to compare against another)",
          file=sys.stderr)

# GPUs per training/evaluation job: `auto` takes one where the machine running Snakemake has GPUs.
GPUS_PER_JOB = (min(1, visible_gpu_count()) if config["resources"]["gpu"] == "auto" else config["resources"]["gpu"])


@functools.cache
def limit_local_resources():
    """Local runs hand out at most the machine's GPUs and 90 % of its memory at once (a --resources
    on the command line wins); cluster runs leave limits to the scheduler. The executor is only
    known once Snakemake builds the DAG, not while it reads the Snakefile (so a profile cannot do
    this: profiles/default applies to cluster runs too), hence this runs from an input function.
    Inside a cluster job (not the main process) the allocation is the limit."""
    if not jobs_run_on_this_machine():
        return
    limits = {name: limit for name, limit in local_resource_limits().items() if name not in workflow.global_resources}
    for name, limit in limits.items():
        workflow.register_resource(name, limit)
    if limits:
        print("convbench: local run: jobs get at most " + ", ".join(f"{name}={limit}" for name, limit in limits.items())
              + " at once", file=sys.stderr)
    if GPUS_PER_JOB > limits.get("gpu", GPUS_PER_JOB):  # Snakemake lowers each job's request to the limit
        print(f"convbench: resources.gpu asks {GPUS_PER_JOB} GPU(s) per job, this machine has {limits['gpu']}; "
              f"jobs get {limits['gpu']}", file=sys.stderr)


def cluster_run():
    """Whether an executor other than the local one runs the jobs (SLURM), dry runs included. A dry
    run swaps any executor for Snakemake's local `dryrun` one, so `workflow.local_exec` is then True
    under `--profile profiles/slurm` too; the intended executor still shows: Snakemake turns threads
    on for every non-local executor before the swap (snakemake/api.py, execute_workflow). Only
    `--force-use-threads` on a local dry run looks the same (that dry run shows cluster values)."""
    threads_forced = workflow.dryrun and getattr(workflow.execution_settings, "use_threads", False)
    return not workflow.local_exec or threads_forced


# No job asks for more than resources.max_mem_mb (convbench.base.memory.memory_limit), resolved at the first
# request, once the executor is known (a cluster job's own process: its node's memory).
configure_limit(lambda: memory_limit(config["resources"]["max_mem_mb"], cluster_run() and workflow.is_main_process))


def jobs_run_on_this_machine():
    """Whether the machine running Snakemake also runs the jobs: its GPUs and memory are the limits."""
    return workflow.is_main_process and not cluster_run()


wildcard_constraints:
    dataset="[a-z0-9_]+",
    arch="[A-Za-z0-9_]+",
    variant="[A-Za-z0-9_.+=,-]+",
    seed=r"\d+",
    spec=r"\d+x\d+x\d+",
    filename=r"[^/]+",


# One experiment: a dataset x architecture x variant x seed. Its files, logs, benchmarks and
# checkpoints all live under this same relative name.
EXPERIMENT_ID = "{dataset}/{arch}/{variant}/seed{seed}"
EXPERIMENT = f"results/experiments/{EXPERIMENT_ID}"
try:  # shards and manifests (every node must read them) under one path wherever prepared_dir points
    PREPARED = rule_prepared_dir(config["storage"]["prepared_dir"], create=workflow.is_main_process)
except ValueError as error:
    sys.exit(f"Error in the config: {error}")
CHECKPOINTS = "results/checkpoints"  # a running training job's checkpoint: f"{CHECKPOINTS}/{EXPERIMENT_ID}"


@functools.cache
def experiments():
    """Every (dataset, arch, variant, seed) of the study known before it runs, as wildcard dicts; with a
    search, also the baseline variant on the confirmation seeds (the chosen recipe's, variant `tuned`,
    are known once the search ends: study_experiments)."""
    confirm = [seed for seed in config["search"]["confirm_seeds"] if seed not in config["seeds"]] if SEARCH else []
    return tuple(
        {"dataset": dataset, "arch": arch, "variant": variant, "seed": seed}
        for dataset in config["datasets"]
        for arch in config["architectures"]
        for variant in VARIANTS
        for seed in [*config["seeds"], *(confirm if variant == BASELINE else [])]
    )


def study_experiments():
    """Every experiment the study tests, the chosen recipes' included: for input functions only (it
    waits for every search to end)."""
    return experiments() + tuned_experiments()


def experiment_files(pattern):
    return [pattern.format(**experiment) for experiment in experiments()]


def study_files(pattern):
    """An input function: `pattern` for every experiment the study tests, chosen recipes included."""
    return lambda wildcards: [pattern.format(**experiment) for experiment in study_experiments()]


def experiment_outputs(*stages):
    """Every output of the given rules (rules.<name>) for every experiment. The default target asks
    for them all: Snakemake remakes a deleted intermediate file only when a job after it reruns, so
    a metrics.json deleted by hand would otherwise stay missing."""
    return [str(pattern).format(**experiment) for stage in stages for pattern in stage.output
            for experiment in experiments()]


def tuned_outputs(*stages):
    """experiment_outputs for the chosen recipes on the confirmation seeds (waits for the searches)."""
    return [str(pattern).format(**experiment) for stage in stages for pattern in stage.output
            for experiment in tuned_experiments()]


def study_benchmarks(wildcards):
    """Snakemake's benchmark file of every job of the study, for the report's wall-time table (not
    every file under results/benchmarks/: those of experiments since removed stay there). A job
    that never ran (a raw file placed by hand) has none; the report skips it."""
    per_experiment = [rules.train_model, rules.evaluate_model, *([rules.export_model] if config["export"] else []),
                      *([rules.log_mlflow] if config["tracking"].get("mlflow") else [])]
    jobs = [(stage, experiment) for stage in per_experiment for experiment in study_experiments()]
    for dataset in config["datasets"]:
        jobs.append((rules.measure_cost, {"dataset": dataset}))
        for raw in raw_inputs(DATASETS[dataset]):
            if raw == rules.fetch_digits.output[0]:
                jobs.append((rules.fetch_digits, {}))
            elif raw.startswith("resources/datasets/"):  # not an image folder read in place
                jobs.append((rules.fetch_file, {"dataset": dataset, "filename": Path(raw).name}))
    jobs += [(rules.prepare_dataset, dict(zip(("dataset", "spec"), Path(manifest).with_suffix("").parts[-2:])))
             for manifest in prepared_manifests()]
    jobs += [(rules.prepare_test_split, {"dataset": Path(path).parent.name, "spec": Path(path).name.removesuffix(".test.json")})
             for path in prepared_test_splits() if path.endswith(".test.json")]
    jobs += [(rules.preview_augmentation, preview) for preview in augmentation_previews()]
    jobs += [(rules.fetch_weights, {"filename": name}) for name in imagenet_weights_sources(config, VARIANTS, DATASETS)]
    jobs.append((rules.summarize, {}))
    jobs += search_benchmarks()
    return [str(stage.benchmark).format(**values) for stage, values in jobs]


def experiment_evaluation_settings(wildcards):
    """What an experiment's metrics and figures depend on besides its model and data (convbench.models.study)."""
    return evaluation_settings(config["render"], ARCHITECTURES[wildcards.arch])


def cost_subjects(wildcards):
    """The models whose speed measure_cost measures on a dataset: one per architecture and variant
    (its seeds share the network), the study's first seed's, by "arch/variant"."""
    return {
        f"{arch}/{variant}": f"results/experiments/{wildcards.dataset}/{arch}/{variant}/seed{config['seeds'][0]}/model.keras"
        for arch in config["architectures"]
        for variant in VARIANTS
    }


def alone_threads(wildcards):
    """A local run gives the job every core, so that no other job runs beside it; on a cluster it
    asks for the training threads (profiles/slurm asks for an exclusive node)."""
    return config["resources"]["train_threads"] if cluster_run() else workflow.cores


FOOTPRINTS = stored_footprints()


def model_need_mb(dataset, arch, variant):
    """MB training this experiment's model needs, before any run measured it (convbench.models.footprints;
    None for custom architectures). A search's variants count with the study's own settings."""
    settings = experiment_settings(config, dataset, arch, VARIANTS.get(variant, {}))
    height, _, channels = DATASETS[dataset].image_shape
    side = model_input_size(ARCHITECTURES[arch], input_spec(ARCHITECTURES[arch], height, channels)[0],
                            settings.get("input_size"))
    return training_need_mb(ARCHITECTURES[arch], side, settings["batch_size"], FOOTPRINTS)


def training_need(wildcards):
    return model_need_mb(wildcards.dataset, wildcards.arch, wildcards.variant)


def model_estimate(wildcards):
    """training_need as a resource (0: no estimate, a YAML architecture's)."""
    return training_need(wildcards) or 0


def cost_need(wildcards):
    """measure_cost trains a step of every model of the dataset in turn: the largest need."""
    needs = [model_need_mb(wildcards.dataset, arch, variant) for arch in config["architectures"] for variant in VARIANTS]
    return max([need for need in needs if need], default=None)


def training_settings(wildcards):
    changes = {key: value for key, value in variant_overrides(wildcards).items() if key != "search"}
    return experiment_settings(config, wildcards.dataset, wildcards.arch, changes)


def variant_overrides(wildcards):
    """What the variant changes; a search's trial or chosen recipe also says where it came from (`search`)."""
    if wildcards.variant in VARIANTS:
        return VARIANTS[wildcards.variant]
    return search_variant_overrides(wildcards)


def variant_augmentation(dataset, variant):
    """The augmentation a variant applies on a dataset (architecture_options aside)."""
    return merge_settings(dataset_settings(config, dataset), VARIANTS[variant])["augmentation"]


def augmentation_previews():
    """One preview per dataset and variant that augments ({dataset, variant, path}); none in a
    study without augmentation."""
    return [
        {"dataset": dataset, "variant": variant, "path": f"results/figures/{dataset}/{variant}/augmentation_preview.png"}
        for dataset in config["datasets"]
        for variant in VARIANTS
        if augmentation_on(variant_augmentation(dataset, variant))
    ]


def fetch_hash(wildcards):
    """A fetched file is its hash: only a new hash refetches it (and what depends on it). Its URLs
    and mirrors are read by the job from the config, so adding a mirror reruns nothing."""
    return f"sha256:{remote_file(DATASETS[wildcards.dataset], wildcards.filename).sha256}"


def dataset_definition(wildcards):
    """What the study declares about a dataset that shapes its prepared data (class names, image
    size, colour mode, folders; not URLs or mirrors): a change to it prepares the data again."""
    declared = config["custom_datasets"].get(wildcards.dataset)
    if not declared:
        return None  # a built-in dataset: its definition is the package's catalog
    files = [{"name": entry.get("name"), "sha256": entry["sha256"]} for entry in declared.get("files", [])]
    return {**{key: value for key, value in declared.items() if key != "files"}, "files": files}


@functools.cache
def dataset_fingerprint(dataset):
    """The content of a dataset's training image folder (its test folder, if it has one, is prepared apart)."""
    info = DATASETS[dataset]
    return folder_fingerprint([info.folders[0]]) if info.folders else None


@functools.cache
def test_folder_fingerprint(dataset):
    return folder_fingerprint([DATASETS[dataset].folders[1]])


def raw_fingerprint(wildcards):
    """Image folders are read in place: a change to any of their files reruns their preparation."""
    return dataset_fingerprint(wildcards.dataset)


def test_fingerprint(wildcards):
    return test_folder_fingerprint(wildcards.dataset)


def weights_input(wildcards):
    """The weights file a training job reads: fetched ImageNet weights, a local file, or nothing."""
    spec = config["transfer_learning"].get(wildcards.arch)
    if not spec:
        return []
    source = transfer_weights(config, wildcards.dataset, wildcards.arch, VARIANTS[wildcards.variant], DATASETS)
    return f"{KERAS_HOME}/models/{source[0]}" if source else spec["weights"]


def weights_hash(wildcards):
    """Hash of a weights file the study's transfer architectures need (URLs are read by the job)."""
    sources = imagenet_weights_sources(config, VARIANTS, DATASETS)
    if wildcards.filename not in sources:
        raise ValueError(f"no transfer architecture of the study uses weights {wildcards.filename}")
    return sources[wildcards.filename][1]


def prepared_prefix(dataset, arch):
    """Prepared data the architecture needs, e.g. results/prepared/digits/28x28x1 (storage.prepared_dir)."""
    height, _, channels = DATASETS[dataset].image_shape
    return f"{PREPARED}/{dataset}/{spec_name(*input_spec(ARCHITECTURES[arch], height, channels))}"


def prepared_files(dataset, arch):
    prefix = prepared_prefix(dataset, arch)
    return {"data": prefix, "manifest": f"{prefix}.json"}


def prepared_data(wildcards):
    """Input of every job that runs a model; the first call also sets the local resource limits."""
    limit_local_resources()
    return prepared_files(wildcards.dataset, wildcards.arch)


def test_split_files(dataset, arch):
    """A test split prepared apart (catalog.separate_test): its folder and manifest; none otherwise."""
    if not separate_test(DATASETS[dataset]):
        return {}
    prefix = prepared_prefix(dataset, arch)
    return {"test_data": f"{prefix}.test", "test_manifest": f"{prefix}.test.json"}


def evaluated_data(wildcards):
    """Input of the jobs that read the test split: the prepared data and a test split prepared apart."""
    return {**prepared_data(wildcards), **test_split_files(wildcards.dataset, wildcards.arch)}


def prepared_test_splits():
    """Each test split prepared apart once, as prepared_manifests (for the report's test images)."""
    return sorted({path for dataset in config["datasets"] for arch in config["architectures"]
                   for path in test_split_files(dataset, arch).values()})


def preview_data(wildcards):
    """An augmentation preview shows the dataset as the study's first architecture sees it."""
    return prepared_files(wildcards.dataset, config["architectures"][0])


def prepared_manifests():
    """Each prepared dataset of the study once, however many architectures share it."""
    return sorted({prepared_prefix(dataset, arch) + ".json" for dataset in config["datasets"]
                   for arch in config["architectures"]})


@functools.cache
def prepared_to_reuse():
    """({dataset: [spec, ...]}, the same for test splits prepared apart) of the prepared data this study reuses
    as it is (the same preparation key: convbench.data.sharing), from an earlier run or another study; the rest
    it prepares. Decided by
    the main process: a job's own process runs only its rule, and need not read manifests or folders."""
    reused, reused_tests, planned = {}, {}, {}
    if not workflow.is_main_process:
        return reused, reused_tests
    for manifest in prepared_manifests():
        dataset, spec = Path(manifest).with_suffix("").parts[-2:]
        try:
            fingerprint = dataset_fingerprint(dataset)
        except OSError:  # a missing or unreadable folder: its preparation job names it
            continue
        key = planned[os.path.normpath(manifest)] = preparation_key(DATASETS[dataset], spec, fingerprint, **config["data"])
        if prepared_state(manifest, key) == "reuse":
            reused.setdefault(dataset, []).append(spec)
        if separate_test(DATASETS[dataset]):  # its test split, prepared apart, has its own key
            test_manifest = manifest.removesuffix(".json") + ".test.json"
            try:
                test_key = test_split_key(key, test_folder_fingerprint(dataset))
            except OSError:
                continue
            planned[os.path.normpath(test_manifest)] = test_key
            if prepared_state(test_manifest, test_key) == "reuse":
                reused_tests.setdefault(dataset, []).append(spec)
    if not workflow.dryrun:  # a dry run neither signs for data nor changes what running jobs check
        plan_prepared(planned)  # the jobs check it when they open the data
    return reused, reused_tests


def evaluation_outputs():
    """Every file evaluate_model writes for one experiment (convbench.evaluate.figures.EVALUATION_FILES), the
    figures tagged for `snakemake --report`."""
    outputs = {key: f"{EXPERIMENT}/{name}" for key, name in EVALUATION_FILES.items()}
    for figure in FIGURES:
        outputs[figure.name] = report(
            outputs[figure.name],
            category=figure.category,
            subcategory="{dataset}",
            caption=f"../report/{figure.caption}",
            labels={"architecture": "{arch}", "variant": "{variant}", "seed": "{seed}"},
        )
    return outputs


def prediction_files(wildcards):
    """One CSV per experiment, or per dataset's best experiment (which needs results/summary.csv)."""
    if not config["predict"]["images"]:
        raise ValueError("the predict target needs images: --config 'predict={images: path/to/folder}'")
    chosen = study_experiments()
    if config["predict"]["best_only"]:
        chosen = best_experiments(read_summary(checkpoints.summarize.get().output[0]))
    return [f"results/predictions/{EXPERIMENT_ID}.csv".format(**experiment) for experiment in chosen]


def images_fingerprint(wildcards):
    """The images' content: new or changed images predict again, touched ones do not."""
    images = Path(config["predict"]["images"])
    try:
        return file_digest(images) if images.is_file() else folder_fingerprint([images])
    except OSError as error:  # an unreadable file: the job names it
        return f"unreadable: {error}"


def mlflow_runs():
    """One run record per experiment when the study logs to MLflow, else none."""
    return experiment_files(f"{EXPERIMENT}/mlflow_run.json") if config["tracking"].get("mlflow") else []


try:  # shared prepared data this study would overwrite stops it here, like a config error
    REUSED_PREPARED, REUSED_TEST_SPLITS = prepared_to_reuse()
except ValueError as error:
    sys.exit(f"Error in the config: {error}")
