# Fetch raw dataset files into resources/ and prepare per-input-spec splits in results/prepared/.


rule fetch_digits:
    output:
        "resources/datasets/digits/digits.npz",
    log:
        "results/logs/fetch/digits.log",
    benchmark:
        "results/benchmarks/fetch/digits.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/datasets.yaml"
    script:
        "../scripts/fetch_digits.py"


rule prepare_dataset:
    input:
        raw=lambda wildcards: [
            f"resources/datasets/{wildcards.dataset}/{name}"
            for name in get_dataset(wildcards.dataset).files
        ],
    output:
        data="results/prepared/{dataset}/{spec}.npz",
        manifest="results/prepared/{dataset}/{spec}.json",
    params:
        data=config["data"],
    log:
        "results/logs/prepare/{dataset}/{spec}.log",
    benchmark:
        "results/benchmarks/prepare/{dataset}/{spec}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/datasets.yaml"
    script:
        "../scripts/prepare_dataset.py"
