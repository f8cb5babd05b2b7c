"""Where a search trial's time goes besides `fit`: each phase of the child process train_trial runs, timed.

    python benchmarks/trial_phases.py [--runs 3]

A trial's child (convbench.tune.trial) imports and configures TensorFlow, opens and checks the prepared data,
builds the model, fits and writes its history and train_meta.json (no model kept). This runs the same calls
on the prepared digits (simple_cnn, 2 epochs, batch 64) in a fresh process per run and prints each phase's
seconds, the median of the runs. It does so twice, in alternating runs: importing Keras as a plain `import keras`
does (with scikit-learn and matplotlib, for Keras' wrappers and plots) and as train_child does
(`import_keras_without_extras`), side by side. Also times the job's own process: Python and `snakemake.script`. Prints the machine's CPU.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "workflow"))

CHILD = r"""
import json, os, sys, time
start = time.perf_counter()
sys.path.insert(0, {package!r})
marks = []
def mark(name):
    marks.append((name, time.perf_counter()))
if {without_sklearn!r}:
    from convbench.tune.trial import import_keras_without_extras
    import_keras_without_extras()
from convbench.base.runtime import configure_tensorflow
strategy = configure_tensorflow(threads=2, seed=1)
mark("import tensorflow and keras, configure_tensorflow")
import convbench.train.training as training
from convbench.data.prepared import load_prepared
mark("import convbench's training")
data = load_prepared({data!r}, {data!r} + ".json")
data.check()
mark("open the prepared data and check every split")
fit_phases = training.fit_phases
def timed(*args, **kwargs):
    mark("build and compile the model")
    result = fit_phases(*args, **kwargs)
    mark("fit, 2 epochs with validation")
    return result
training.fit_phases = timed
settings = {{"epochs": 2, "batch_size": 64, "optimizer": "adam", "learning_rate": 1e-3, "deterministic": True,
            "augmentation": None}}
training.train_experiment(data, "simple_cnn", seed=1, settings=settings, strategy=strategy, model_path=None,
                          history_path={out!r} + "/h.csv", meta_path={out!r} + "/meta.json",
                          checkpoint_dir={out!r} + "/ckpt", variant_overrides={{"search": {{"rung": 0}}}},
                          checkpoint_interval=1e9)
mark("write history and train_meta.json")
phases, previous = [], start
for name, at in marks:
    phases.append([name, at - previous])
    previous = at
print(json.dumps({{"phases": phases, "total": previous - start}}))
sys.stdout.flush()
os._exit(0)  # as the rule scripts end (_bootstrap.finish)
"""


def timed_process(code):
    begun = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "", time.perf_counter() - begun


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from convbench.base.runtime import cpu_model
    from convbench.data.datasets import export_digits, prepare_dataset

    modes = {"plain `import keras` (before)": False, "without its extras (train_child)": True}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        export_digits(folder / "digits.npz")
        prepare_dataset("digits", [folder / "digits.npz"], "28x28x1", folder / "d", folder / "d.json", split_seed=0,
                        test_fraction=0.2, validation_fraction=0.1, scaling="unit")
        codes = {mode: CHILD.format(package=str(PROJECT / "workflow"), data=str(folder / "d"), out=str(folder / "out"),
                                    without_sklearn=without) for mode, without in modes.items()}
        timed_process(codes[next(iter(modes))])  # a first run puts the libraries in the page cache
        runs = {mode: [] for mode in modes}
        for _ in range(args.runs):  # alternating, so that a slower minute of the VM hits both
            for mode, code in codes.items():
                runs[mode].append(timed_process(code))
        _, script_seconds = timed_process("import snakemake.script")
    print(f"CPU: {cpu_model()}, 2 threads; medians of {args.runs} runs of each, alternating, each in a fresh process")
    print("| phase | " + " | ".join(f"{mode}, s" for mode in modes) + " |")
    print("|---|" + "---|" * len(modes))
    results = {mode: [json.loads(line) for line, _ in mode_runs] for mode, mode_runs in runs.items()}
    first = next(iter(results.values()))[0]
    for index, (name, _) in enumerate(first["phases"]):
        cells = [statistics.median(result["phases"][index][1] for result in mode_results)
                 for mode_results in results.values()]
        print(f"| {name} | " + " | ".join(f"{cell:.2f}" for cell in cells) + " |")
    totals = [statistics.median(result["total"] for result in mode_results) for mode_results in results.values()]
    print("| **in the process, in all** | " + " | ".join(f"**{total:.2f}**" for total in totals) + " |")
    walls = [statistics.median(wall for _, wall in mode_runs) for mode_runs in runs.values()]
    print("| wall, process start to exit | " + " | ".join(f"{wall:.2f}" for wall in walls) + " |")
    print(f"\nThe job's own process (Python and snakemake.script): {script_seconds:.2f} s")


if __name__ == "__main__":
    main()
