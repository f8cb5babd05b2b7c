"""What the report's verdicts say, and the intervals behind them, for a finished study (or one run here).

    python benchmarks/verdicts.py RESULTS_FOLDER                       # a study already run: its results/
    python benchmarks/verdicts.py --run studies/identical-copy.yaml    # run the study in a scratch copy first

Prints, per dataset, the report's first line, each model against the leader, every pair, and for a
search its tuned − default differences and the order verdict with both recipes' intervals: the same
functions the report calls (convbench.report.verdicts, confidence, search).
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "workflow"))
sys.path.insert(0, str(PROJECT / "tests"))

from conftest import copy_workflow  # noqa: E402
from convbench.base.runtime import cpu_model  # noqa: E402
from convbench.report import confidence, search, tables, verdicts  # noqa: E402


def run_study(study_file):
    workdir = copy_workflow(Path(tempfile.mkdtemp(prefix="verdicts-")))
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(study_file.resolve())]
    subprocess.run(command, cwd=workdir, check=True)
    return workdir / "results"


def report(results):
    import os

    os.chdir(results.parent)  # summary.csv names experiment folders relative to the study
    summary = tables.load_summary(results / "summary.csv")
    records = search.main_records(search.load_records(sorted(results.glob("search/*/*/search.json"))))
    for dataset in dict.fromkeys(summary["dataset"]):
        resampled = verdicts.Resampled(verdicts.correctness(summary, dataset))
        print(f"\n## {dataset}\n\n{verdicts.lead_sentence(dataset, resampled)}\n")
        print(confidence.standings_table(resampled).to_string(index=False))
        models = resampled.models()
        print("\nevery pair (a − b):")
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                diff = resampled.difference(a, b)
                print(f"  {a} − {b}: {diff.text()} ({'tied' if diff.tied else 'beyond noise'}; {diff.covers})")
        if records:
            confirm = sorted(map(int, summary.loc[summary["variant"].astype(str) == "tuned", "seed"].unique()))
            table = search.confirmation(summary, records, dataset, resampled, confirm)
            print(f"\ntuned − default on seeds {confirm}:")
            for row in table.itertuples(index=False):
                print(f"  {row.architecture}: {100 * row.difference:+.2f} points [{100 * row.ci_low:+.2f}, "
                      f"{100 * row.ci_high:+.2f}] {row.verdict}")
            pairs = search.order_pairs(table, resampled, confirm)
            print(f"\n{search.order_verdict(pairs)}")
            for a, b, default, tuned in pairs:
                print(f"  {a} − {b}: default {default.text()}, tuned {tuned.text()}, "
                      f"flipped beyond noise: {search.flipped(default, tuned)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", type=Path, help="a finished study's results folder")
    parser.add_argument("--run", type=Path, help="a study file to run first, in a scratch copy of the workflow")
    args = parser.parse_args()
    results = run_study(args.run) if args.run else args.results.resolve()
    print(f"CPU: {cpu_model()}; study: {args.run or results}")
    report(results)


if __name__ == "__main__":
    main()
