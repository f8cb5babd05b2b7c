"""First import of every rule script: routes all output to the rule's log, makes convbench importable,
records an uncaught exception as one line for the end of the run (convbench.base.job_errors) and the
job's peak memory for the next run's request (convbench.base.memory), and for
rules that declare GPUs claims free device slots (convbench.base.devices). `finish()` ends a TensorFlow
job once its outputs are written.

Snakemake puts this directory on sys.path; the package lives one level up, in workflow/.
"""

import functools
import logging
import os
import sys
from pathlib import Path


def start(snakemake):
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
    log_file = open(snakemake.log[0], "a", buffering=1)
    # dup2 so that TensorFlow's C++ messages (written to fd 2) land in the log too.
    os.dup2(log_file.fileno(), 1)
    os.dup2(log_file.fileno(), 2)
    sys.stdout = sys.stderr = log_file
    logging.basicConfig(
        stream=log_file, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )
    logging.getLogger("convbench").info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards))
    record_errors(snakemake)
    record_memory(snakemake)
    if "gpu" in snakemake.resources.keys():  # before TensorFlow starts: it reads CUDA_VISIBLE_DEVICES once
        from convbench.base.devices import claim_gpus

        claim_gpus(int(snakemake.resources.gpu), Path(".snakemake") / "convbench-gpu-slots")


def record_errors(snakemake):
    """An uncaught exception: its traceback to the log (Python's own hook), and one line for the
    summary Snakemake prints at the end of the run (convbench.base.job_errors)."""
    from convbench.base import job_errors

    wildcards = dict(snakemake.wildcards)
    job_errors.started(snakemake.rule, wildcards)
    print_traceback = sys.excepthook

    def hook(kind, error, traceback):
        print_traceback(kind, error, traceback)
        job_errors.record(snakemake.rule, wildcards, snakemake.log[0], error)

    sys.excepthook = hook


_memory_recorders = []


def record_memory(snakemake):
    """The job's peak memory, when it ends (failed, or stopped by SIGTERM: a SLURM time limit, scancel), for
    the next run's request (convbench.base.memory), with the model estimate it was measured under."""
    import atexit
    import signal

    from convbench.base import memory

    declared = snakemake.resources.get("mem_mb")
    memory.watch_children()
    recorder = functools.partial(memory.record_peak, snakemake.rule, dict(snakemake.wildcards), declared,
                                 model_mb=snakemake.resources.get("model_mb") or None)
    _memory_recorders.append(recorder)
    atexit.register(recorder)

    def stopped(signum, frame):
        recorder()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # ends as SIGTERM would have: the executor sees the same

    signal.signal(signal.SIGTERM, stopped)


def finish():
    """Ends a job that ran TensorFlow, its outputs written and closed: Python's own shutdown of
    TensorFlow's modules and threads takes ~1.2 s per process (BENCHMARKS.md), more than many jobs'
    real work. Only on success: an exception ends the script before this, with its traceback."""
    for recorder in _memory_recorders:  # os._exit skips atexit
        recorder()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
