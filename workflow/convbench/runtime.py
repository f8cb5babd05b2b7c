"""TensorFlow process setup shared by every job that runs a model: threads, devices, seeds."""

import os
import platform


def configure_tensorflow(*, threads, seed=None, deterministic=True):
    """Call before any TensorFlow op: the thread pools can only be sized before they start.

    Returns the tf.distribute strategy for the GPUs this job may use (CUDA_VISIBLE_DEVICES).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # Without memory growth TensorFlow reserves all of a GPU's memory for one job.
        tf.config.experimental.set_memory_growth(gpu, True)
    if seed is not None:
        seed_everything(seed, deterministic)
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def set_precision(precision):
    """Set Keras' global dtype policy; `auto` is mixed_float16 when the job has a GPU, float32 otherwise.

    Measured on CPUs (issue #4, BENCHMARKS.md): float16 is several times slower than float32 and
    bfloat16 gains only with AVX-512 BF16, so CPUs default to float32.
    """
    import keras
    import tensorflow as tf

    if precision == "auto":
        precision = "mixed_float16" if tf.config.list_logical_devices("GPU") else "float32"
    keras.mixed_precision.set_global_policy(precision)
    return precision


def seed_everything(seed, deterministic=True):
    """One seed for Python, NumPy, TensorFlow and Keras; optionally bitwise-deterministic ops."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def environment_facts():
    """Hardware and software versions, for provenance in every metadata file."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": [gpu.name for gpu in gpus],
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
