"""The train stage: a seeded tf.data pipeline, model.fit over the run's phases, and the files an experiment
leaves (resuming a killed run: convbench.train.checkpoints)."""

import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from ..base.atomic import atomic_path, sha256, write_json
from ..base.runtime import environment_facts
from ..base.schedules import learning_rate_schedule
from ..evaluate.figures import evaluation_files
from ..evaluate.inference import split_batches
from ..models.architectures import as_architecture, create_model
from ..models.fused_batchnorm import fuse_batchnorm
from ..models.saving import save_model
from ..models.transfer import pretrained_base, unfreeze_last
from .augmentation import make_augmentation  # noqa: F401 (the preview_augmentation script imports it from here)
from .augmentation import augments_in_model, set_first_epoch
from .auxiliary import AUXILIARY_LOSS_WEIGHT
from .fitted import auxiliary_outputs, fitted_model, trained_model
from .pipeline import training_dataset
from .checkpoints import EpochCheckpoint, make_callbacks, restore_checkpoint, runtime_facts
from .tensorboard_log import TensorBoardLog

log = logging.getLogger(__name__)


def config_hash(settings):
    """Short stable hash of the settings that define an experiment."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


# The code that decides the weights an experiment's training arrives at: its networks, their layers and
# saving, training and augmentation, and what training calls outside them: the per-batch resize and gather,
# the learning-rate schedules, the seeding and precision. A checkpoint resumes only under the same code.
FIT_SPLITS = ("train", "val")  # what training reads of the prepared data
WEIGHT_CODE = ("models", "train", "evaluate/inference.py", "base/schedules.py", "base/runtime.py")


def weight_code_files(package):
    """The package's files WEIGHT_CODE names (a folder: its modules), in a fixed order."""
    return sorted(path for part in WEIGHT_CODE
                  for path in ((package / part).glob("*.py") if (package / part).is_dir() else [package / part]))


def experiment_fingerprint(arch, seed, settings, manifest):
    """What a checkpoint must match to be resumed, by part (restore_checkpoint names the part that
    differs): the training settings, the prepared data's content (its shards' and labels' hashes and
    its scaling, so a changed split or `data.scaling` shows), and the architecture's definition and
    the code that shapes the weights."""
    package = Path(__file__).resolve().parent.parent
    code = hashlib.sha256()
    for path in weight_code_files(package):
        code.update(f"{path.relative_to(package)}\0".encode() + path.read_bytes())
    return {
        "settings": config_hash({"architecture": arch.name, "seed": seed, "settings": settings}),
        # what training reads: the training and validation splits (a test split changed alone resumes)
        "data": config_hash({"source": manifest["source_sha256"], "input_shape": manifest["input_shape"],
                             "shards": {split: [shard.get("sha256") for shard in manifest["shards"][split]]
                                        for split in FIT_SPLITS},
                             "counts": {split: (manifest.get("counts") or {}).get(split) for split in FIT_SPLITS},
                             "labels": {split: (manifest.get("labels_sha256") or {}).get(split) for split in FIT_SPLITS},
                             "preprocessing": manifest["preprocessing"]}),
        "architecture": config_hash({"definition": architecture_definition(arch), "code": code.hexdigest()}),
    }


def remove_earlier_evaluation(experiment_dir):
    """The metrics and figures of the model this job replaces: Snakemake deletes a failed training job's
    outputs, and they must not outlive the model they describe (a report would show them). The
    evaluation job writes them again once the new model is there."""
    for path in evaluation_files(experiment_dir).values():
        if path.exists():
            log.info("removing %s: it describes the model being replaced", path)
            path.unlink()


def architecture_definition(arch):
    """The architecture as data: its fields, its builder's name and what the builder captured (a YAML
    architecture's layers, a transfer architecture's settings); no memory addresses."""
    build = arch.build
    named = {item.name: getattr(arch, item.name) for item in fields(arch) if item.name != "build"}
    return json.dumps({**{key: qualified_name(value) if callable(value) else value for key, value in named.items()},
                       "builder": qualified_name(build),
                       "captured": [cell.cell_contents for cell in build.__closure__ or ()]},
                      sort_keys=True, default=str)


def qualified_name(function):
    return f"{function.__module__}.{function.__qualname__}"


def make_optimizer(settings, learning_rate, schedule="constant", steps_per_epoch=1, epochs=1):
    """The optimizer with its learning-rate schedule (convbench.base.schedules).

    With `plateau` the rate starts constant and ReduceLROnPlateau lowers it (the optimizer's
    learning-rate variable is saved with every checkpoint). weight_decay is Keras' decoupled decay.
    """
    name = settings["optimizer"]
    rate = learning_rate_schedule(settings, learning_rate, schedule, steps_per_epoch, epochs)
    decay = {"weight_decay": settings["weight_decay"]} if settings.get("weight_decay") is not None else {}
    if name == "adam":
        return keras.optimizers.Adam(rate, **decay)
    if name == "adamw":
        return keras.optimizers.AdamW(rate, **decay)
    if name == "sgd":
        return keras.optimizers.SGD(rate, momentum=settings.get("momentum", 0.9), nesterov=settings.get("nesterov", True),
                                    **decay)
    raise ValueError(f"unknown optimizer {name!r}; use adam, adamw or sgd")


class EpochTimer(keras.callbacks.Callback):
    """Records wall time and images/s of every epoch, and logs them as progress."""

    def __init__(self, images_per_epoch):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._start
        self.seconds.append(elapsed)
        metrics = ", ".join(f"{key}={value:.4f}" for key, value in (logs or {}).items())
        log.info("epoch %d: %.2f s, %.0f images/s, %s", epoch + 1, elapsed, self.images_per_epoch / elapsed, metrics)


class TrainingDiverged(RuntimeError):
    recurs = True  # same seed, same settings, same NaN (convbench.base.job_errors)


def set_batchnorm_momentum(model, momentum):
    """Every BatchNorm layer's moving-average momentum, nested bases included.

    With few steps per epoch (small datasets) Keras' 0.99 leaves the moving statistics far behind
    the weights and validation accuracy at chance; 0.9 follows them (measured on digits: 0.10 -> 0.99).
    """
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def compile_model(model, settings, learning_rate, schedule, steps_per_epoch, epochs):
    model.compile(
        optimizer=make_optimizer(settings, learning_rate, schedule, steps_per_epoch, epochs),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=settings.get("label_smoothing", 0.0)),
        metrics=["accuracy"],
    )


@dataclass(frozen=True)
class Phases:
    """The epochs of a run: [0, epochs) from scratch or with a frozen base, then, for transfer
    architectures, [epochs, epochs + fine_tune.epochs) with the base's last layers unfrozen."""

    bounds: tuple  # ((start, end), ...)
    fine_tune: dict

    @classmethod
    def of(cls, settings, transfer):
        epochs = settings["epochs"]
        # a variant's fine_tune settings override the transfer architecture's own
        fine_tune = {**transfer["fine_tune"], **settings.get("fine_tune", {})} if transfer else {"epochs": 0}
        extra = ((epochs, epochs + fine_tune["epochs"]),) if fine_tune["epochs"] else ()
        return cls(((0, epochs),) + extra, fine_tune)

    @property
    def total(self):
        return self.bounds[-1][1]


def train_experiment(data, architecture, *, seed, settings, strategy, model_path, history_path, meta_path,
                     checkpoint_dir, weights=None, variant="default", variant_overrides=None, tensorboard=None,
                     precision_reason=None, on_saved=None, checkpoint_interval=0.0, in_memory=True):
    """Train one (dataset, architecture, variant, seed) experiment and write model, history and metadata.

    `architecture`: an Architecture (convbench.models.study resolves the study's) or a built-in's name.
    `settings` are the complete effective training settings (the variant's overrides included);
    `variant` and `variant_overrides` only name them in the metadata. `model_path` None: no model is kept
    (a search's trial: only its validation scores count, convbench.tune.trial).

    A run killed part-way resumes from `checkpoint_dir` at the next epoch, with the same result.
    Transfer-learning architectures train in two phases (convbench.models.transfer): `epochs` with the
    base frozen, then fine_tune.epochs with its last layers unfrozen; `weights` is "imagenet" or
    a weights file for their base. `tensorboard`: {"directory", "graph", "histograms"} to log
    the run for TensorBoard as it trains (convbench.train.tensorboard_log), or None. `on_saved(model)` runs
    once the outputs are written, before the checkpoint is removed: a job killed meanwhile resumes
    from its last checkpoint instead of training again. `checkpoint_interval`: seconds between
    checkpoints at least (0: every epoch; convbench.train.checkpoints.EpochCheckpoint). `in_memory`: hold the
    training split in memory (convbench.data.prepared.fits_in_memory), else read it from its shards per batch.
    """
    arch = as_architecture(architecture)
    data.check()  # every split, the test split too: damaged data stops the job before training, not after
    phases = Phases.of(settings, arch.transfer)
    remove_earlier_evaluation(Path(meta_path).parent)
    fingerprint = experiment_fingerprint(arch, seed, settings, data.manifest)
    runtime = runtime_facts()
    with strategy.scope():
        fitted, resumed = build_or_restore(arch, data, settings, weights, checkpoint_dir, fingerprint, runtime,
                                            phases, seed)
    model = trained_model(fitted)  # fitted: the network itself, or it wrapped (convbench.train.fitted)
    fused_layers = fuse_batchnorm(model)
    history, callbacks = fit_phases(fitted, resumed, data, settings, phases, seed=seed, strategy=strategy,
                                    checkpoint_dir=checkpoint_dir, fingerprint=fingerprint, runtime=runtime,
                                    tensorboard=tensorboard, name=arch.name, checkpoint_interval=checkpoint_interval,
                                    in_memory=in_memory)
    stopping = callbacks.get("early_stopping")
    if resumed.stopped and stopping is not None:  # the job died after early stopping, before its outputs
        stopping.set_model(fitted)
        stopping.on_train_begin()  # takes the saved counters and best weights
        if stopping.restore_best_weights and stopping.best_weights is not None:
            fitted.set_weights(stopping.best_weights)  # what on_train_end would have done
    # A search's trial (convbench.tune) is scored on its validation split only: its test split is never
    # evaluated, and a trial that diverged is a result (the worst score), not a failed job.
    search = (variant_overrides or {}).get("search")
    trial = bool(search) and search.get("rung") is not None
    try:
        frame = history_frame(history, arch.name)
        diverged = False
    except TrainingDiverged as error:
        if not trial:
            raise
        log.warning("%s; a search trial that diverges ranks last", error)
        frame, diverged = pd.DataFrame(history), True
    write_outputs(model, frame, data, arch, phases, stopping, model_path=model_path, history_path=history_path,
                  meta_path=meta_path, seed=seed, settings=settings, variant=variant,
                  variant_overrides=variant_overrides, resumed_after=len(resumed.history), runtime=runtime,
                  precision_reason=precision_reason, fused_layers=fused_layers, in_memory=in_memory, diverged=diverged,
                  on_model=augments_in_model(fitted), auxiliary=auxiliary_outputs(fitted))
    if on_saved is not None and not trial:
        on_saved(model)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return model


def build_or_restore(arch, data, settings, weights, checkpoint_dir, fingerprint, runtime, phases, seed):
    """(model to fit, Resumed): the last checkpointed epoch of this very experiment, else a new compiled model
    (wrapped as convbench.train.fitted says)."""
    model, resumed = restore_checkpoint(checkpoint_dir, fingerprint, runtime)
    if model is None:
        options = {"weights": weights} if arch.transfer else {}
        model = create_model(arch, data.input_shape, data.num_classes, input_size=settings.get("input_size"), **options)
        if settings.get("batchnorm_momentum") is not None:
            set_batchnorm_momentum(model, settings["batchnorm_momentum"])
        steps = math.ceil(data.count("train") / settings["batch_size"])
        model = fitted_model(model, arch, settings, data.manifest, seed, steps, phases.total)
        compile_model(model, settings, settings["learning_rate"], settings.get("schedule", "constant"), steps,
                      settings["epochs"])
    return model, resumed


def fit_phases(model, resumed, data, settings, phases, *, seed, strategy, checkpoint_dir, fingerprint, runtime,
               tensorboard, name=None, checkpoint_interval=0.0, in_memory=True):
    """model.fit over each phase's epochs still to run, checkpointing as it goes; returns the
    history rows of every epoch (resumed ones first) and the resumable callbacks. `model`: what fits (the
    trained model behind ModelAugmentation under augment_on: model, which then takes uint8 batches)."""
    y_train = data.labels("train")
    # In memory when it fits (the fastest), else read from the shards per batch: the same batches either way.
    x_train = data.images("train") if in_memory else (lambda index: data.images("train", index))
    log.info("training split: %d images, %.0f MB, %s", len(y_train), data.nbytes("train") / 2**20,
             "in memory" if in_memory else "read from its shards per batch")
    batch_size = settings["batch_size"]
    steps = math.ceil(len(y_train) / batch_size)
    trained = trained_model(model)
    on_model = augments_in_model(model)
    side = trained.input_shape[1]  # images are resized to it per batch (input_size)
    val_ds = split_batches(data, "val", max(batch_size, 256), input_size=side, with_labels=True, in_memory=in_memory,
                           stored=on_model)
    timer = EpochTimer(len(y_train))
    resumable = make_callbacks(settings, resumed.callbacks)
    checkpoint = EpochCheckpoint(checkpoint_dir, fingerprint, timer, resumed.history, resumable, runtime,
                                 min_interval=checkpoint_interval)
    # after the checkpoint: it logs the row the checkpoint has just recorded
    watchers = [TensorBoardLog(tensorboard["directory"], checkpoint, len(y_train), graph=tensorboard["graph"],
                               histograms=tensorboard["histograms"])] if tensorboard else []
    epoch = len(resumed.history)
    log.info("training %s: %d parameters, epochs %d..%d of %d steps, augmented %s", name or trained.name,
             trained.count_params(), epoch + 1, phases.total, steps, "on the model" if on_model else "in tf.data")
    for phase, (start, end) in enumerate(phases.bounds):
        if epoch >= end or resumed.stopped:
            continue
        if phase == 1 and epoch == start:  # a run resumed inside phase 2 has its unfrozen model and optimizer back
            fine_tune = phases.fine_tune
            with strategy.scope():
                unfrozen = unfreeze_last(trained, fine_tune["layers"])
                compile_model(model, {**settings, "warmup_epochs": 0}, fine_tune["learning_rate"], "constant", steps, 1)
            log.info("fine-tuning: %d layers of the base unfrozen, learning rate %g", len(unfrozen),
                     fine_tune["learning_rate"])
        train_ds = training_dataset(
            x_train, y_train, data.manifest, num_classes=data.num_classes, batch_size=batch_size, seed=seed,
            first_epoch=epoch, epochs=end, augmentation=settings["augmentation"], input_size=side,
            augment_on="model" if on_model else "input",
        )
        set_first_epoch(model, epoch, steps)
        with data.reading():  # damaged data read in tf.data's threads: its own one line, not TensorFlow's
            model.fit(
                train_ds,
                initial_epoch=epoch,
                epochs=end,
                steps_per_epoch=steps,
                validation_data=val_ds,
                shuffle=False,  # the dataset is already shuffled, per epoch
                # checkpoint last: it records what the others decided this epoch
                callbacks=[keras.callbacks.TerminateOnNaN(), *resumable.values(), timer, checkpoint, *watchers],
                verbose=0,
            )
        epoch = len(checkpoint.history)
    data.close()  # the shards' file descriptors; what reads the data next opens them again
    return checkpoint.history, resumable


def history_frame(history, architecture):
    """The per-epoch rows as history.csv holds them; a diverged run fails here, before any output."""
    frame = pd.DataFrame(history)
    # One column order whether or not the run was resumed (resumed rows come back from JSON, keys sorted).
    frame = frame[["epoch", *sorted(set(frame.columns) - {"epoch", "seconds"}), "seconds"]]
    if not np.isfinite(frame["loss"]).all():
        raise TrainingDiverged(
            f"{architecture} diverged: loss became NaN at epoch {len(frame)}; lower the learning rate"
        )
    return frame


def write_outputs(model, frame, data, arch, phases, stopping, *, model_path, history_path, meta_path, seed, settings,
                  variant, variant_overrides, resumed_after, runtime, precision_reason, fused_layers, in_memory,
                  diverged=False, on_model=False, auxiliary=0):
    """model.keras (unless model_path is None), history.csv and train_meta.json, each written atomically."""
    model_sha256 = None
    if model_path is not None:
        with atomic_path(model_path) as tmp:
            save_model(model, tmp)
            model_sha256 = sha256(tmp)  # loading checks it (architectures.load_model): a damaged copy is retrained
    with atomic_path(history_path) as tmp:
        frame.to_csv(tmp, index=False)
    seconds = frame["seconds"].to_numpy()
    transfer = arch.transfer
    write_json(
        meta_path,
        {
            "architecture": arch.name,
            "dataset": data.manifest["dataset"],
            "variant": variant,
            "seed": seed,
            "variant_overrides": {key: value for key, value in (variant_overrides or {}).items() if key != "search"},
            # a search's trial or chosen recipe: method, search seed, trial, rung and the trial it came from
            **({"search": variant_overrides["search"]} if (variant_overrides or {}).get("search") else {}),
            "settings": settings,
            "config_hash": config_hash(settings),
            "parameters": int(model.count_params()),
            "model_sha256": model_sha256,
            "input_shape": list(model.input_shape[1:]),  # what the model takes; data.input_shape is the prepared data's
            # what prediction needs to treat a new image as this model's training data was treated
            "data": {key: data.manifest[key] for key in ("class_names", "input_shape", "preprocessing")},
            "epochs_run": len(frame),
            "resumed_after_epoch": resumed_after,
            "best_epoch": None if diverged else int(frame["val_loss"].idxmin()) + 1,
            **({"diverged": True} if diverged else {}),
            "stopped_early": len(frame) < phases.total,
            "transfer": None if not transfer else {
                **transfer, "fine_tune": phases.fine_tune, "phase_epochs": [end - start for start, end in phases.bounds],
                "trainable_base_layers": [layer.name for layer in pretrained_base(model).layers if layer.trainable],
            },
            "weights_from_epoch": (stopping.best_epoch + 1 if stopping and stopping.restore_best_weights
                                   and stopping.best_weights is not None else len(frame)),
            "seconds_per_epoch": seconds.tolist(),
            "train_seconds": float(seconds.sum()),
            "images_per_second": float(data.count("train") / np.median(seconds)),
            "precision": runtime["precision"],
            "precision_reason": precision_reason,  # why this precision (runtime.choose_precision)
            "threads": runtime["threads"],  # with the precision and TensorFlow version, part of the exact result
            "batchnorm_fused_layers": fused_layers,  # BatchNormalization layers trained on the fused kernel
            "training_data": "in memory" if in_memory else "read from its shards per batch",
            "augmented_on": "model" if on_model else "input",  # training.augment_on, resolved
            # training.auxiliary_classifiers, resolved: how many trained beside the saved network, and their weight
            "auxiliary_classifiers": {"count": auxiliary, "loss_weight": AUXILIARY_LOSS_WEIGHT} if auxiliary else None,
            "environment": environment_facts(),
        },
    )
