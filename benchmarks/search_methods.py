"""TPE against random search: the best validation accuracy found after 8, 16 and 32 trials, over search seeds.

    python benchmarks/search_methods.py [--seeds 5] [--trials 32] [--epochs 2] [--architecture simple_cnn]

Each search runs in its own process (TensorFlow starts once per search): trials proposed by convbench's own
search steps (convbench.tune.search, batch 4, no halving), each trained by train_experiment, the code path of
a workflow trial, on digits prepared as the default study prepares them, in float32 with 2 threads. The space
is the tuned-comparison study's. Prints, per method and budget, the mean ± std over search seeds of the best
validation accuracy so far and of the test accuracy of the trial that validation chose.
TPE's first 12 trials (Optuna's 10 startup trials in whole batches) are the random search's, so at 8 trials
the two methods are the same search by construction.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
SPACE = {"learning_rate": {"log_uniform": [0.0001, 0.01]}, "batch_size": {"choice": [32, 64, 128]},
         "label_smoothing": {"uniform": [0.0, 0.2]}}
BUDGETS = (8, 16, 32)

WORKER = r"""
import json, sys
sys.path.insert(0, {package!r})
from convbench.base.runtime import configure_tensorflow, set_precision
strategy = configure_tensorflow(threads=2, seed={seed}, deterministic=True)
set_precision("float32")
import numpy as np
import pandas as pd
import yaml
from snakemake.utils import validate
from convbench.base.config import experiment_settings
from convbench.data.prepared import load_prepared
from convbench.evaluate.inference import class_probabilities
from convbench.train.training import train_experiment
from convbench.tune.record import trial_result
from convbench.tune.search import Plan, overrides, step_trials

config = {{"datasets": ["digits"], "architectures": [{arch!r}], "seeds": [1], "training": {{"epochs": {epochs}, "precision": "float32"}}}}
validate(config, {schema!r})
plan = Plan.from_config({{"method": {method!r}, "trials": {trials}, "batch": 4, "seed": {seed}, "space": {space!r},
                          "halving": None}}, {epochs})
out = {out!r}
data = load_prepared(out + "/data", out + "/data.json")
x_test, y_test = data.scaled("test")
record = []
for step in range(plan.step_count()):
    for trial in step_trials(plan, step, record):
        folder = f"{{out}}/trial{{trial['trial']}}"
        settings = experiment_settings(config, "digits", {arch!r}, overrides(trial["settings"]))
        model = train_experiment(data, {arch!r}, seed={seed}, settings=settings, strategy=strategy,
                                 model_path=folder + "/model.keras", history_path=folder + "/history.csv",
                                 meta_path=folder + "/train_meta.json", checkpoint_dir=folder + "/ckpt")
        test = float(np.mean(class_probabilities(model, x_test).argmax(1) == y_test))
        record.append({{**trial, **trial_result(folder), "test": test}})
print(json.dumps(record))
"""


def search(method, seed, args, data_folder):
    sys.path.insert(0, str(PROJECT / "workflow"))
    with tempfile.TemporaryDirectory() as out:
        for name in ("data", "data.json"):
            Path(out, name).symlink_to(data_folder / name)
        code = WORKER.format(package=str(PROJECT / "workflow"), seed=seed, method=method, out=out, epochs=args.epochs,
                             arch=args.architecture, trials=args.trials, space=SPACE,
                             schema=str(PROJECT / "workflow/schemas/config.schema.yaml"))
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if result.returncode:
            sys.exit(result.stderr[-3000:])
        return json.loads(result.stdout.strip().splitlines()[-1])


def best_at(record, budget):
    """(best validation accuracy among the first `budget` trials, that trial's test accuracy)."""
    first = record[:budget]
    best = max(first, key=lambda trial: (trial["score"] if trial["score"] is not None else -1, -trial["trial"]))
    return best["score"], best["test"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--architecture", default="simple_cnn")
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT / "workflow"))
    sys.path.insert(0, str(PROJECT / "benchmarks"))
    from bf16_parity import prepare
    from convbench.base.runtime import cpu_model
    from convbench.models.architectures import input_spec

    print(f"CPU: {cpu_model()}; 2 threads; {args.architecture} on digits, {args.epochs} epochs a trial, "
          f"{args.seeds} search seeds", flush=True)
    size, channels = input_spec(args.architecture, 8, 1)
    data = prepare(Path(tempfile.mkdtemp(prefix="search-methods-")), f"{size}x{size}x{channels}")
    found = {method: [search(method, seed, args, data) for seed in range(1, args.seeds + 1)] for method in ("random", "tpe")}
    budgets = [budget for budget in BUDGETS if budget <= args.trials]
    print(f"\n{'method':<8}" + "".join(f"{f'{b} trials: validation / test':>36}" for b in budgets))
    for method, records in found.items():
        cells = []
        for budget in budgets:
            validation, test = zip(*(best_at(record, budget) for record in records))
            spread = [f"{statistics.mean(v):.2%} ± {statistics.stdev(v) if len(v) > 1 else 0:.2%}" for v in (validation, test)]
            cells.append(f"{spread[0]} / {spread[1]}")
        print(f"{method:<8}" + "".join(f"{cell:>36}" for cell in cells))


if __name__ == "__main__":
    main()
