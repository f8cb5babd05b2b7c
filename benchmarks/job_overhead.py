"""What a study pays besides `model.fit`: wall time and summed job time of two commits, side by side.

    python benchmarks/job_overhead.py [--old 9945acf] [--new HEAD] [--studies default twelve tuned comparison]
                                      [--cores 2] [--repeats 1]

Each commit's tracked files are copied to a fresh folder and run there with this Python's packages,
`precision: float32` forced so both do the same arithmetic. *job time* sums every job's wall time
from its `benchmark:` file; *fit* sums `train_seconds` from the train_meta.json files (the fit's
epochs, as the training log reports them); *besides fit* is the difference: process start-up,
imports, data loading, model building and loading, evaluation, figures, the report.

Studies: `default` is config.yaml as shipped; `twelve` is 12 experiments with 2 epochs each —
2 architectures x 2 variants x 3 seeds (commits before variants existed: 2 architectures x 6 seeds,
the same jobs); `tuned` is the shipped tuned comparison (studies/tuned-comparison.yaml) for simple_cnn alone:
one search of 27 trials, its confirmation and the report (commits since the search existed); `comparison` is
the whole shipped tuned comparison: simple_cnn, bn_cnn and lenet5, each searched, confirmed and reported.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "workflow"))

from convbench.base.runtime import cpu_model  # noqa: E402
FLOAT32 = "training={precision: float32}"
TWELVE_WITH_VARIANTS = ["training={precision: float32, epochs: 2}", "seeds=[1, 2, 3]",
                        "variants={default: {}, low_lr: {learning_rate: 0.0003}}"]
TWELVE_WITHOUT_VARIANTS = ["training={precision: float32, epochs: 2}", "seeds=[1, 2, 3, 4, 5, 6]"]


def checkout(commit, into):
    """The commit's tracked files, as a clone would have them."""
    archive = subprocess.run(["git", "-C", PROJECT, "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return subprocess.run(["git", "-C", PROJECT, "rev-parse", "--short", commit],
                          check=True, capture_output=True, text=True).stdout.strip()


def study_arguments(workdir, study):
    """Snakemake's arguments for a study."""
    if study == "tuned":
        return ["--configfile", "studies/tuned-comparison.yaml", "--config", "architectures=[simple_cnn]", FLOAT32]
    if study == "comparison":
        return ["--configfile", "studies/tuned-comparison.yaml", "--config", FLOAT32]
    return ["--config", *study_config(workdir, study)]


def study_config(workdir, study):
    if study == "default":
        return [FLOAT32]
    has_variants = "variants" in (workdir / "workflow" / "schemas" / "config.schema.yaml").read_text()
    return TWELVE_WITH_VARIANTS if has_variants else TWELVE_WITHOUT_VARIANTS


def job_seconds(results):
    """Per rule: (jobs, summed wall seconds) from the benchmark files."""
    per_rule = {}
    for tsv in (results / "benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv")
        with tsv.open() as handle:
            seconds = float(next(csv.DictReader(handle, delimiter="\t"))["s"])
        jobs, total = per_rule.get(rule, (0, 0.0))
        per_rule[rule] = (jobs + 1, total + seconds)
    return per_rule


def run_study(commit, study, cores):
    with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
        workdir = Path(tmp)
        label = checkout(commit, workdir)
        command = [sys.executable, "-m", "snakemake", "--cores", str(cores), *study_arguments(workdir, study)]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=workdir, capture_output=True, text=True,
                                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        wall = time.perf_counter() - start
        if result.returncode:
            raise SystemExit(f"{label} failed:\n{result.stderr[-4000:]}")
        results = workdir / "results"
        fit = sum(json.loads(meta.read_text())["train_seconds"] for meta in results.rglob("train_meta.json"))
        return {"commit": label, "wall": wall, "fit": fit, "rules": job_seconds(results)}


def totals(run):
    jobs = sum(seconds for _, seconds in run["rules"].values())
    return {"wall": run["wall"], "job time": jobs, "model.fit": run["fit"], "job time besides fit": jobs - run["fit"]}


def print_study(study, olds, news):
    """Medians over the repeats (each repeat ran old then new), and each repeat's ratio besides fit."""
    old_totals, new_totals = [totals(run) for run in olds], [totals(run) for run in news]
    print(f"\n### {study}: {olds[0]['commit']} (old) vs {news[0]['commit']} (new), median of {len(olds)}\n")
    print("| seconds | old | new | new / old |\n|---|---|---|---|")
    for name in old_totals[0]:
        before = statistics.median(run[name] for run in old_totals)
        after = statistics.median(run[name] for run in new_totals)
        print(f"| {name} | {before:.1f} | {after:.1f} | {after / before:.2f}× |")
    ratios = [new["job time besides fit"] / old["job time besides fit"] for old, new in zip(old_totals, new_totals)]
    print("\nbesides fit, new / old per repeat: " + ", ".join(f"{ratio:.2f}×" for ratio in ratios))
    print("\n| rule | old: jobs, s | new: jobs, s |\n|---|---|---|")
    for rule in sorted(set(olds[0]["rules"]) | set(news[0]["rules"])):
        cells = [f"{runs[0]['rules'][rule][0]}, {statistics.median(run['rules'][rule][1] for run in runs):.1f}"
                 if rule in runs[0]["rules"] else "—" for runs in (olds, news)]
        print(f"| {rule} | {cells[0]} | {cells[1]} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", default="9945acf", help="baseline commit (default: main when issue #15 was filed)")
    parser.add_argument("--new", default="HEAD")
    parser.add_argument("--studies", nargs="+", choices=["default", "twelve", "tuned", "comparison"],
                        default=["default", "twelve"])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each commit, alternating; medians shown")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; snakemake --cores {args.cores}")
    for study in args.studies:
        olds, news = [], []
        for _ in range(args.repeats):
            olds.append(run_study(args.old, study, args.cores))
            news.append(run_study(args.new, study, args.cores))
        print_study(study, olds, news)


if __name__ == "__main__":
    main()
