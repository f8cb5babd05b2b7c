"""TensorBoard logs of a training job, live: `tensorboard --logdir results/tensorboard`.

Laid out as Keras' TensorBoard callback lays them out (train/ and validation/ runs of one
experiment, so its curves overlay), but written by convbench so that a killed and resumed job
continues the same curves without duplicate points: a (re)started job clears the experiment's
folder and first replays the epochs its checkpoint holds. The step is the epoch number (1, 2, ...),
as in history.csv.
"""

import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

# history.csv column -> (run, tag); tags as Keras' callback names them
SCALARS = {
    "loss": ("train", "epoch_loss"),
    "accuracy": ("train", "epoch_accuracy"),
    "val_loss": ("validation", "epoch_loss"),
    "val_accuracy": ("validation", "epoch_accuracy"),
    "learning_rate": ("train", "epoch_learning_rate"),
    "images_per_second": ("train", "images_per_second"),
}


class TensorBoardLog(keras.callbacks.Callback):
    """Writes each finished epoch's row (history.csv's columns plus images/s) to TensorBoard;
    optionally every weight's histogram. Epoch rows come from the EpochCheckpoint's history, so
    what TensorBoard shows is what history.csv will hold."""

    def __init__(self, directory, checkpoint, images_per_epoch, *, graph=True, histograms=False):
        super().__init__()
        self.directory = Path(directory)
        self.checkpoint = checkpoint
        self.images_per_epoch = images_per_epoch
        self.write_graph, self.histograms = graph, histograms
        shutil.rmtree(self.directory, ignore_errors=True)  # a retrained or resumed job starts the curves again
        self.writers = {run: tf.summary.create_file_writer(str(self.directory / run)) for run in ("train", "validation")}
        for row in checkpoint.history:  # epochs a resumed job already has
            self.write_row(row)

    def set_model(self, model):
        super().set_model(model)
        if self.write_graph:
            self.write_graph = False  # once per job, not once per fit (transfer learning fits twice)
            forward = tf.function(lambda images: model(images, training=False))
            spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
            with self.writers["train"].as_default():
                tf.summary.graph(forward.get_concrete_function(spec).graph)

    def on_epoch_end(self, epoch, logs=None):
        # runs after the EpochCheckpoint (the last callback's row is the one just finished)
        self.write_row(self.checkpoint.history[-1])
        if self.histograms:
            with self.writers["train"].as_default():
                for weight in self.model.weights:
                    tf.summary.histogram(weight.path, weight, step=epoch + 1)
        for writer in self.writers.values():
            writer.flush()  # live: TensorBoard shows the epoch now, not when the job ends

    def write_row(self, row):
        values = {**row, "images_per_second": self.images_per_epoch / row["seconds"] if row.get("seconds") else None}
        for column, (run, tag) in SCALARS.items():
            value = values.get(column)
            if value is not None and np.isfinite(value):
                with self.writers[run].as_default():
                    tf.summary.scalar(tag, float(value), step=int(row["epoch"]))

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.flush()


def current_learning_rate(model):
    """The optimizer's learning rate now (a schedule's value at the current step)."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
