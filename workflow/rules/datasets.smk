# Fetch raw dataset files into resources/ and prepare per-input-spec splits in results/prepared/.
# Code: workflow/convbench/data.

# Downloads run where Snakemake runs (the login node under SLURM): compute nodes never need the internet.
localrules:
    fetch_digits,
    fetch_file,


ruleorder: fetch_digits > fetch_file


rule fetch_digits:
    output:
        "resources/datasets/digits/digits.npz",
    log:
        "results/logs/fetch/digits.log",
    benchmark:
        "results/benchmarks/fetch/digits.tsv"
    threads: 1
    resources:
        mem_mb=asked_mb("fetch_digits", 500),
        runtime=5,
    conda:
        "../../envs/datasets.yaml"
    script:
        "../scripts/fetch_digits.py"


# One job per remote file. A file already at this path (placed by hand) is not downloaded;
# prepare_dataset verifies it against the published hash.
rule fetch_file:
    output:
        "resources/datasets/{dataset}/{filename}",
    params:
        known_hash=fetch_hash,
    log:
        "results/logs/fetch/{dataset}/{filename}.log",
    benchmark:
        "results/benchmarks/fetch/{dataset}/{filename}.tsv"
    threads: 1
    resources:
        mem_mb=asked_mb("fetch_file", 500),
        runtime=60,
    conda:
        "../../envs/datasets.yaml"
    script:
        "../scripts/fetch_file.py"


# Only the prepared data this study makes: data it reuses by content (an earlier run's, another
# study's in a shared storage.prepared_dir) has no job here, so nothing can rewrite it.
rule prepare_dataset:
    wildcard_constraints:
        spec=preparation_constraint(REUSED_PREPARED),
    input:
        raw=lambda wildcards: raw_inputs(DATASETS[wildcards.dataset]),
    output:
        data=directory(f"{PREPARED}/{{dataset}}/{{spec}}"),  # image shards and labels (convbench.data.prepared)
        manifest=f"{PREPARED}/{{dataset}}/{{spec}}.json",
    params:
        data=config["data"],
        definition=dataset_definition,
        fingerprint=raw_fingerprint,
    log:
        "results/logs/prepare/{dataset}/{spec}.log",
    benchmark:
        "results/benchmarks/prepare/{dataset}/{spec}.tsv"
    threads: 1
    resources:
        mem_mb=asked_mb("prepare_dataset", 4000),
        runtime=60,
    conda:
        "../../envs/datasets.yaml"
    script:
        "../scripts/prepare_dataset.py"


# The test split of a dataset whose test images have a folder of their own (an image folder's test_path),
# prepared apart: new test images re-evaluate every model and retrain none (training reads the training and
# validation splits only). Reused by content like the rest (a test split of another study's data).
rule prepare_test_split:
    wildcard_constraints:
        spec=preparation_constraint(REUSED_TEST_SPLITS),
    input:
        test=lambda wildcards: DATASETS[wildcards.dataset].folders[1],
        manifest=f"{PREPARED}/{{dataset}}/{{spec}}.json",  # the data it belongs to: class names, input size
    output:
        data=directory(f"{PREPARED}/{{dataset}}/{{spec}}.test"),
        manifest=f"{PREPARED}/{{dataset}}/{{spec}}.test.json",
    params:
        definition=dataset_definition,
        fingerprint=test_fingerprint,
    log:
        "results/logs/prepare/{dataset}/{spec}.test.log",
    benchmark:
        "results/benchmarks/prepare/{dataset}/{spec}.test.tsv"
    threads: 1
    resources:
        mem_mb=asked_mb("prepare_test_split", 2000),
        runtime=60,
    conda:
        "../../envs/datasets.yaml"
    script:
        "../scripts/prepare_test_split.py"
