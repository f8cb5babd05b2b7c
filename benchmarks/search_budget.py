"""What a finished search cost, against searching without successive halving.

    python benchmarks/search_budget.py [WORKDIR]      # a study run with `search:`, e.g. studies/tuned-comparison.yaml

Reads each architecture's results/search/<dataset>/<arch>/search.json and its trials' train_meta.json and
Snakemake benchmark files, and prints per architecture: the trials, the epochs the schedule gives them, the
epochs they really ran (early stopping may stop a trial sooner), the same trials each trained for the full
epochs (the search without halving), their ratio, the trials' training wall time, and the chosen trial.
"""

import json
import platform
import sys
from pathlib import Path

import pandas as pd


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def search_cost(workdir, record):
    trials = record["trials"]
    full = record["plan"]["rungs"][-1]["epochs"] * record["plan"]["trials"]
    ran, seconds = 0, 0.0
    for trial in trials:
        ran += json.loads((workdir / trial["experiment"] / "train_meta.json").read_text())["epochs_run"]
        relative = Path(trial["experiment"]).relative_to("results/experiments")
        benchmark = workdir / "results/benchmarks/train" / relative.parent / f"{relative.name}.tsv"
        seconds += float(pd.read_csv(benchmark, sep="\t")["s"].iloc[0])
    return {"architecture": record["architecture"], "dataset": record["dataset"], "method": record["plan"]["method"],
            "trials": record["plan"]["trials"], "trial runs": len(trials), "scheduled epochs": record["epochs_spent"],
            "epochs run": ran, "without halving": full, "ratio": f"{record['epochs_spent'] / full:.0%}",
            "training jobs (s)": round(seconds), "chosen": record["chosen"]["variant"],
            "validation accuracy": f"{record['chosen']['validation_accuracy']:.2%}"}


def main():
    workdir = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    records = [json.loads(path.read_text()) for path in sorted(workdir.glob("results/search/*/*/search.json"))]
    if not records:
        sys.exit(f"no results/search/*/*/search.json under {workdir}: run a study with `search:` first")
    print(f"machine: {cpu_name()}, {len(__import__('os').sched_getaffinity(0))} cores")
    print(pd.DataFrame([search_cost(workdir, record) for record in records]).to_string(index=False))


if __name__ == "__main__":
    main()
