"""TensorFlow process setup shared by every job that runs a model: threads, devices, seeds."""

import logging
import os
import platform

from . import job_errors


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
    unusable = unusable_gpus_message(given_gpus(), len(gpus), tf.__version__, tf.test.is_built_with_cuda())
    if unusable:
        logging.getLogger(__name__).warning(unusable)
        job_errors.notice_this_job(unusable)
    if seed is not None:
        seed_everything(seed, deterministic)
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def given_gpus():
    """The devices this job was given (CUDA_VISIBLE_DEVICES, set by SLURM or convbench.base.devices)."""
    return [device.strip() for device in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
            if device.strip() and device.strip() != "-1"]


def unusable_gpus_message(given, visible, tf_version, built_with_cuda):
    """One line when a job was given GPUs but TensorFlow sees none (it then runs on the CPU), naming the fix."""
    if not given or visible:
        return None
    fix = ("its driver or CUDA libraries are not found on the node: check `nvidia-smi` there and the "
           "CUDA libraries of `pip install 'tensorflow[and-cuda]'`" if built_with_cuda else
           "it is a CPU-only build: install `tensorflow[and-cuda]` (pip) in the job's environment")
    return (f"given GPU(s) {','.join(given)} (CUDA_VISIBLE_DEVICES) but TensorFlow {tf_version} sees none and ran "
            f"on the CPU; {fix}, or set resources.gpu: 0 to ask for no GPU")


# CPU flags (Linux /proc/cpuinfo) of units that compute in bfloat16: AVX-512 BF16 and Intel AMX.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_flags(cpuinfo=None):
    """The BF16 flags this CPU reports (sorted; empty without BF16 units or /proc/cpuinfo)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as handle:
                cpuinfo = handle.read()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return sorted(set(line.split(":", 1)[1].split()) & set(BF16_CPU_FLAGS))
    return []


def choose_precision(precision, bf16_keeps_accuracy, gpus, bf16_flags):
    """(precision, why) for a training job. `auto`: mixed_float16 on GPUs; on CPUs with BF16 units
    mixed_bfloat16 for architectures whose accuracy bfloat16 was shown to keep (the parity
    benchmark, BENCHMARKS.md), float32 otherwise (without BF16 units bfloat16 is emulated: 0.2x)."""
    if precision != "auto":
        return precision, "set in the config"
    if gpus:
        return "mixed_float16", f"auto: {gpus} GPU(s) visible"
    flags = ", ".join(bf16_flags)
    if bf16_flags and bf16_keeps_accuracy:
        return "mixed_bfloat16", f"auto: the CPU has {flags} and this architecture keeps its accuracy in bfloat16"
    if bf16_flags:
        return "float32", f"auto: the CPU has {flags}, but bfloat16 accuracy parity is not shown for this architecture"
    return "float32", "auto: the CPU has no BF16 units (neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo)"


def set_precision(precision, bf16_keeps_accuracy=False):
    """Resolve (choose_precision) and set Keras' global dtype policy; returns (precision, why)."""
    import keras
    import tensorflow as tf

    gpus = len(tf.config.list_logical_devices("GPU"))
    precision, why = choose_precision(precision, bf16_keeps_accuracy, gpus, cpu_bf16_flags())
    keras.mixed_precision.set_global_policy(precision)
    return precision, why


def seed_everything(seed, deterministic=True):
    """One seed for Python, NumPy, TensorFlow and Keras; optionally bitwise-deterministic ops."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def environment_facts():
    """Hardware and software versions, for provenance in every metadata file."""
    from .lock import lock_facts

    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": [gpu.name for gpu in gpus],
        "gpus_given": given_gpus(),  # CUDA_VISIBLE_DEVICES: what the scheduler gave, whether TensorFlow could use it
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        **lock_facts(),  # which requirements.lock, and how this job's packages differ from it
    }


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), or what the platform reports."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
