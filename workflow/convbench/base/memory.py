"""What a job's memory really is: each job measures its peak, and the next run asks for it.

A job records its peak resident memory (its process's high-water mark, plus the largest of the
children it waited for: papermill's kernel) when it ends, in its log and in
.snakemake/convbench-memory/. A rule declares mem_mb through `asked_mb`: the configured value, or
what the job needs when that is more (one line says so): HEADROOM times its measured peak once a
run has measured it, before that its model's estimated need (convbench.models.footprints) with
room for data held in memory; times the attempt (a cluster that killed a job out of memory gives
its retry twice as much). A job that peaked above what it declared leaves a notice for the end of
the run: under SLURM it would have been killed.
"""

import json
import logging
import math
import resource
import sys

from .atomic import write_json
from .job_errors import job_name, job_record_path, notice

MEMORY_DIR = ".snakemake/convbench-memory"  # kept across runs: the next run's requests come from it
HEADROOM = 1.25  # the peak varies a little from run to run (allocator, thread timing)
DATA_SHARE = 0.25  # of a training job's memory, what its splits may take in memory (convbench.data.prepared)

log = logging.getLogger(__name__)


def peak_mb():
    """This process's peak resident memory plus its largest waited-for child's, in MB. Its own is the
    kernel's high-water mark of this program (VmHWM), not getrusage's: that one starts from the size
    of the process that started the job (Snakemake's) when the job was forked. A child's is getrusage's,
    so it starts from this job's size when the child was forked: an upper bound."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux
    try:
        with open("/proc/self/status") as status:
            own = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):  # not Linux: getrusage's (bytes on macOS)
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
        children /= 1024 if sys.platform == "darwin" else 1
    return own + children


def record_peak(rule, wildcards, declared_mb, directory=MEMORY_DIR):
    """Keep the job's peak for the next run's request; a peak above the declared memory is a notice."""
    peak = math.ceil(peak_mb())
    path = job_record_path(rule, wildcards, directory, "memory")
    write_json(path, {"rule": rule, "job": job_name(wildcards), "peak_mb": peak,
                      "declared_mb": declared_mb})
    log.info("peak memory %d MB (declared mem_mb: %s)", peak, declared_mb)
    if declared_mb and peak > declared_mb:
        notice(rule, wildcards, f"{rule} jobs peaked above the memory they declared (peaks in {MEMORY_DIR}/): on "
                                f"a cluster they would be killed; the next run asks for {HEADROOM} x the peak")
    return peak


def measured_peak(rule, wildcards, directory=MEMORY_DIR):
    """The job's peak as its last run measured it (MB), or None."""
    path = job_record_path(rule, wildcards, directory, "memory")
    try:
        return int(json.loads(path.read_text())["peak_mb"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def asked_mb(rule, configured_mb, estimate=None, directory=MEMORY_DIR):
    """mem_mb for a rule's jobs (a Snakemake resource function): `configured_mb`, or the job's need
    when that is more, times the attempt. `estimate`: wildcards -> the MB its model needs, or None."""
    said = []  # the raised request is said once per rule and run: a study has many jobs of a rule

    def mem_mb(wildcards, attempt):
        job = dict(wildcards.items())
        peak = measured_peak(rule, job, directory)
        if peak:
            needed, why = math.ceil(HEADROOM * peak), f"{HEADROOM} x the {peak} MB it peaked at on an earlier run"
        else:
            model_mb = estimate(wildcards) if estimate else None
            needed = math.ceil(model_mb / (1 - DATA_SHARE)) if model_mb else 0
            why = f"the {model_mb} MB its model needs to train, and room for its data"
        if needed > configured_mb and not said:
            said.append(job)
            print(f"convbench: {rule} asks for more than its configured {configured_mb} MB: e.g. {job_name(job)} "
                  f"{needed} MB, {why}", file=sys.stderr)
        return max(configured_mb, needed) * attempt

    return mem_mb
