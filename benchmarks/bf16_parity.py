"""Does bfloat16 keep accuracy? float32 vs mixed_bfloat16 over seeds, per architecture.

    python benchmarks/bf16_parity.py [--seeds 5] [--epochs 20] [--architectures simple_cnn bn_cnn resnet20]

Trains each architecture on scikit-learn's digits (prepared as the default study prepares them)
through convbench's own train_experiment and evaluates on the test split, once per seed and
precision, each run in a fresh process with 2 threads. Prints mean ± std per precision, the
seed-paired difference (bf16 - float32) with its 95 % t interval, and the verdict precision `auto`
uses: bfloat16 "keeps accuracy" unless the interval lies entirely below 0 (worse beyond seed noise).
The architectures it keeps accuracy for are marked bf16_keeps_accuracy in convbench.models.architectures.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, sys, time
sys.path.insert(0, {package!r})
from convbench.base.runtime import configure_tensorflow, set_precision
strategy = configure_tensorflow(threads=2, seed={seed}, deterministic=True)
set_precision({precision!r})
import numpy as np
from convbench.data.prepared import load_prepared
from convbench.train.training import train_experiment
from convbench.evaluate.inference import class_probabilities
out = {out!r}
data = load_prepared(out + "/data", out + "/data.json")
settings = {{"epochs": {epochs}, "batch_size": 128, "optimizer": "adam", "learning_rate": 1e-3, "deterministic": True,
            "augmentation": None}}
start = time.perf_counter()
model = train_experiment(data, {arch!r}, seed={seed}, settings=settings, strategy=strategy, model_path=out + "/m.keras",
                         history_path=out + "/h.csv", meta_path=out + "/meta.json", checkpoint_dir=out + "/ckpt")
x, y = data.scaled("test")
accuracy = float(np.mean(class_probabilities(model, x).argmax(1) == y))
meta = json.load(open(out + "/meta.json"))
print(json.dumps({{"accuracy": accuracy, "images_per_second": meta["images_per_second"], "precision": meta["precision"]}}))
"""


def prepare(folder, spec):
    sys.path.insert(0, str(PROJECT / "workflow"))
    from convbench.data.datasets import export_digits, prepare_dataset

    raw = folder / "digits.npz"
    if not raw.exists():
        export_digits(raw)
    target = folder / spec
    target.mkdir(exist_ok=True)
    prepare_dataset("digits", [raw], spec, target / "data", target / "data.json", split_seed=0, test_fraction=0.2,
                    validation_fraction=0.1, scaling="unit")
    return target


def train(arch, seed, precision, epochs, data_folder):
    with tempfile.TemporaryDirectory() as out:
        for name in ("data", "data.json"):
            Path(out, name).symlink_to(data_folder / name)
        code = WORKER.format(package=str(PROJECT / "workflow"), seed=seed, precision=precision, out=out, epochs=epochs,
                             arch=arch)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return json.loads(result.stdout.strip().splitlines()[-1])


def verdict(differences):
    from scipy import stats

    mean = statistics.mean(differences)
    if len(differences) < 2 or statistics.stdev(differences) == 0:
        return mean, (mean, mean), mean >= 0
    low, high = stats.t.interval(0.95, len(differences) - 1, loc=mean, scale=stats.sem(differences))
    return mean, (low, high), high >= 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--architectures", nargs="+", default=["simple_cnn", "bn_cnn", "resnet20"])
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT / "workflow"))
    from convbench.models.architectures import input_spec
    from convbench.base.runtime import cpu_bf16_flags, cpu_model

    print(f"CPU: {cpu_model()}; BF16 flags: {', '.join(cpu_bf16_flags()) or 'none'}; 2 threads per run; "
          f"digits, {args.epochs} epochs, {args.seeds} seeds", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="bf16-parity-"))
    rows = []
    for arch in args.architectures:
        size, channels = input_spec(arch, 8, 1)
        data = prepare(folder, f"{size}x{size}x{channels}")
        runs = {precision: [train(arch, seed, precision, args.epochs, data) for seed in range(1, args.seeds + 1)]
                for precision in ("float32", "mixed_bfloat16")}
        accuracy = {precision: [run["accuracy"] for run in found] for precision, found in runs.items()}
        speed = {precision: statistics.median(run["images_per_second"] for run in found) for precision, found in runs.items()}
        mean, (low, high), keeps = verdict([b - f for b, f in zip(accuracy["mixed_bfloat16"], accuracy["float32"])])
        rows.append((arch, accuracy, speed, mean, low, high, keeps))
        print(json.dumps({"architecture": arch, "accuracy": accuracy, "images_per_second": speed}), flush=True)
    print(f"\n{'architecture':<12}{'float32':>17}{'mixed_bfloat16':>17}{'bf16 - fp32 [95% CI]':>30}"
          f"{'train img/s fp32 / bf16':>26}  verdict")
    for arch, accuracy, speed, mean, low, high, keeps in rows:
        cells = [f"{statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0:.4f}" for v in accuracy.values()]
        difference = f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]"
        speeds = f"{speed['float32']:.0f} / {speed['mixed_bfloat16']:.0f}"
        print(f"{arch:<12}{cells[0]:>17}{cells[1]:>17}{difference:>30}{speeds:>26}  "
              + ("keeps accuracy" if keeps else "worse beyond seed noise: stays float32"))


if __name__ == "__main__":
    main()
