"""Which rung TPE models: the highest with enough scores (BOHB's rule, convbench's) against rung 0 only.

    python benchmarks/search_rungs.py [--seeds 5] [--trials 27] [--epochs 9] [--confirm 2]

Each search (TPE, batch 3, halving from 1 epoch with eta 3, the tuned-comparison study's space, the default
recipe as trial 1) runs in its own process: convbench's own search steps (convbench.tune.search), each trial
trained by train_experiment, the code path of a workflow trial, simple_cnn on digits as the default study
prepares it, float32, 2 threads. The rung-0 rule is the same code with `modeled_rung` answering 0. The chosen
recipe is then trained on `--confirm` fresh seeds and tested: its confirmed accuracy. Prints, per search seed
and rule, the chosen settings, their validation accuracy and the confirmed test accuracy, then the mean over
search seeds.
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

WORKER = r"""
import json, sys
sys.path.insert(0, {package!r})
from convbench.base.runtime import configure_tensorflow, set_precision
strategy = configure_tensorflow(threads=2, seed={seed}, deterministic=True)
set_precision("float32")
import numpy as np
from snakemake.utils import validate
import convbench.tune.search as search
from convbench.base.config import experiment_settings
from convbench.data.prepared import load_prepared
from convbench.evaluate.inference import class_probabilities
from convbench.train.training import train_experiment
from convbench.tune.record import trial_result

if {rule!r} == "rung0":
    search.modeled_rung = lambda plan, record: 0
config = {{"datasets": ["digits"], "architectures": ["simple_cnn"], "seeds": [1],
          "training": {{"epochs": {epochs}, "precision": "float32"}}}}
validate(config, {schema!r})
baseline = experiment_settings(config, "digits", "simple_cnn", {{}})
plan = search.Plan.from_config({{"method": "tpe", "trials": {trials}, "batch": 3, "seed": {seed}, "space": {space!r},
                                 "halving": {{"min_epochs": 1, "eta": 3}}}}, {epochs}, baseline=baseline)
out = {out!r}
data = load_prepared(out + "/data", out + "/data.json")
x_test, y_test = data.scaled("test")


def train(settings, seed, folder):
    return train_experiment(data, "simple_cnn", seed=seed, settings=settings, strategy=strategy,
                            model_path=folder + "/model.keras", history_path=folder + "/history.csv",
                            meta_path=folder + "/train_meta.json", checkpoint_dir=folder + "/ckpt")


record = []
for step in range(plan.step_count()):
    for trial in search.step_trials(plan, step, record):
        folder = f"{{out}}/trial{{trial['trial']}}-r{{trial['rung']}}"
        changes = {{**search.overrides(trial["settings"]), "epochs": trial["epochs"]}}
        settings = experiment_settings(config, "digits", "simple_cnn", changes)
        train(settings, {seed}, folder)
        record.append({{**trial, **trial_result(folder)}})
chosen = search.chosen_trial(plan, record)
settings = experiment_settings(config, "digits", "simple_cnn", search.overrides(chosen["settings"]))
confirmed = []
for seed in range(101, 101 + {confirm}):
    model = train(settings, seed, f"{{out}}/confirm{{seed}}")
    confirmed.append(float(np.mean(class_probabilities(model, x_test).argmax(1) == y_test)))
print(json.dumps({{"chosen": chosen, "confirmed": confirmed, "trials": len(record),
                  "epochs": sum(trial["epochs"] for trial in record)}}))
"""


def run(rule, seed, args, data_folder):
    with tempfile.TemporaryDirectory() as out:
        for name in ("data", "data.json"):
            Path(out, name).symlink_to(data_folder / name)
        code = WORKER.format(package=str(PROJECT / "workflow"), seed=seed, rule=rule, out=out, epochs=args.epochs,
                             trials=args.trials, space=SPACE, confirm=args.confirm,
                             schema=str(PROJECT / "workflow/schemas/config.schema.yaml"))
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if result.returncode:
            sys.exit(result.stderr[-3000:])
        return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=27)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--confirm", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT / "workflow"))
    sys.path.insert(0, str(PROJECT / "benchmarks"))
    from bf16_parity import prepare
    from convbench.base.runtime import cpu_model

    print(f"CPU: {cpu_model()}; 2 threads; simple_cnn on digits; TPE, {args.trials} trials, halving 1 → {args.epochs} "
          f"epochs (eta 3); {args.seeds} search seeds; {args.confirm} confirmation seeds", flush=True)
    data = prepare(Path(tempfile.mkdtemp(prefix="search-rungs-")), "28x28x1")
    summary = {}
    for seed in range(1, args.seeds + 1):
        for rule in ("highest", "rung0"):
            result = run(rule, seed, args, data)
            chosen = result["chosen"]
            confirmed = statistics.mean(result["confirmed"])
            summary.setdefault(rule, []).append((chosen["score"], confirmed))
            print(f"seed {seed} {rule:<8} trial {chosen['trial']:>2} {json.dumps(chosen['settings'])}: validation "
                  f"{chosen['score']:.2%}, confirmed test {confirmed:.2%} ({result['trials']} runs, "
                  f"{result['epochs']} epochs)", flush=True)
    for rule, values in summary.items():
        validation, confirmed = zip(*values)
        spread = [statistics.stdev(values) if len(values) > 1 else 0.0 for values in (validation, confirmed)]
        print(f"{rule:<8} validation {statistics.mean(validation):.2%} ± {spread[0]:.2%}, "
              f"confirmed test {statistics.mean(confirmed):.2%} ± {spread[1]:.2%} (mean ± std over search seeds)")


if __name__ == "__main__":
    main()
