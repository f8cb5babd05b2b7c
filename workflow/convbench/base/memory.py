"""What a job's memory really is: each job measures its peak, and the next run asks for it.

A job records its peak resident memory when it ends (failed, or stopped by SIGTERM: a SLURM time limit or
scancel), in its log and in .snakemake/convbench-memory/: its process's high-water mark plus that of the
children it runs (papermill's kernel, a search trial's training), sampled while they live. A rule declares
mem_mb through `asked_mb`: the configured value, or what the job needs when that is more (one line says so):
HEADROOM times its measured peak once a run has measured it with the same model estimate (a peak measured
before the batch size or input size changed is stale), before that its model's estimated need
(convbench.models.footprints) with room for data held in memory; times the attempt (a cluster that killed a
job out of memory gives its retry twice as much); never above `resources.max_mem_mb` (locally: this
machine's memory), which one line states when it caps a request. A job that peaked above what it declared
leaves a notice for the end of the run: under SLURM it would have been killed.
"""

import json
import logging
import math
import os
import resource
import sys
import threading
from pathlib import Path

from .atomic import write_json
from .job_errors import job_name, job_record_path, notice

MEMORY_DIR = ".snakemake/convbench-memory"  # kept across runs: the next run's requests come from it
HEADROOM = 1.25  # the peak varies a little from run to run (allocator, thread timing)
DATA_SHARE = 0.25  # of a training job's memory, what its splits may take in memory (convbench.data.prepared)
SAMPLE_SECONDS = 0.5  # how often a job's children's high-water marks are read
LIMITS = {"max_mb": None}  # set by the workflow (configure_limit): no request goes above it

log = logging.getLogger(__name__)


def configure_limit(max_mb):
    """The most any job may ask for (MB; None: no cap), or a function that tells it when first asked."""
    LIMITS["max_mb"] = max_mb


def limit_mb():
    if callable(LIMITS["max_mb"]):
        LIMITS["max_mb"] = LIMITS["max_mb"]()
    return LIMITS["max_mb"]


def machine_mb():
    """This machine's memory in MB (None where unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):
        return None


def cluster_node_mb():
    """The largest memory of a SLURM node (MB: `sinfo -h -o %m`, run where Snakemake runs), or None without
    SLURM: no job can be given more, and sbatch refuses a request above it."""
    import subprocess

    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%m"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    sizes = [int(line.strip().rstrip("+")) for line in result.stdout.splitlines() if line.strip().rstrip("+").isdigit()]
    return max(sizes, default=None) if result.returncode == 0 else None


def memory_limit(configured, on_cluster):
    """resources.max_mem_mb as a number: `auto` is this machine's memory locally, the largest SLURM node's on
    a cluster (None when sinfo cannot tell: no cap)."""
    if configured != "auto":
        return configured
    return cluster_node_mb() if on_cluster else machine_mb()


def own_peak_mb():
    """This process's high-water mark (VmHWM), not getrusage's: that one starts from the size of the process
    that started the job (Snakemake's) when the job was forked."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):  # not Linux: getrusage's (bytes on macOS)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


class ChildrenPeak:
    """The largest sum of the live descendants' own high-water marks (/proc/<pid>/status VmHWM), sampled. A
    child's getrusage figure starts from its parent's size when it was forked (it counted the parent's pages
    twice: 632 -> 1,265 MB); its VmHWM is its own. Children that lived under a sample's interval are
    counted by getrusage's upper bound instead."""

    def __init__(self, interval=SAMPLE_SECONDS):
        self.peak_kb, self.sampled = 0, False
        self.adopted = set()  # processes that work for this job without being its children (adopt)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval):
        while not self._stop.wait(interval):
            self.sample()

    def adopt(self, pid):
        """Count `pid` as this job's child: a search trial forked by a warm process (convbench.tune.warm_start)."""
        self.adopted.add(pid)

    def release(self, pid):
        self.adopted.discard(pid)

    def sample(self):
        children = [pid for pid, parent in descendants(os.getpid()) if not _forked_copy(pid, parent)]
        children += sorted(self.adopted - set(children))
        marks = [mark for mark in map(_hwm_kb, children) if mark]
        if marks:
            self.sampled = True
            self.peak_kb = max(self.peak_kb, sum(marks))

    def mb(self):
        self.sample()
        return self.peak_kb / 1024 if self.sampled else waited_children_mb()


def waited_children_mb():
    """getrusage's figure for the children waited for: the largest one's, from its parent's size at the fork."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kB on Linux, bytes on macOS
    return children / (2**20 if sys.platform == "darwin" else 1024)


def descendants(pid):
    """(pid, parent pid) of a process's children, grandchildren, ... (Linux: /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(kid) for kid in children.read_text().split()]
            except (OSError, ValueError):
                continue
            found += [(kid, parent) for kid in kids]
            todo += kids
    return found


def _forked_copy(pid, parent):
    """Whether a child is still its parent's copy: forked, not yet exec'd (the same command line). Its VmHWM
    is the parent's pages, shared copy-on-write: a sample caught there counted the parent twice (851 MB for
    400 + 200)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == Path(f"/proc/{parent}/cmdline").read_bytes()
    except OSError:
        return True  # gone, or going: nothing to count


def _hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    except (OSError, ValueError):
        return 0


_children = []  # the job's ChildrenPeak (started by workflow/scripts/_bootstrap.py)


def watch_children():
    if not _children:
        _children.append(ChildrenPeak())
    return _children[0]


def peak_mb():
    """This process's peak resident memory plus its children's, in MB."""
    return own_peak_mb() + (_children[0].mb() if _children else waited_children_mb())


def record_peak(rule, wildcards, declared_mb, directory=MEMORY_DIR, model_mb=None):
    """Keep the job's peak for the next run's request, with the model estimate it was measured under
    (`model_mb`; a later request ignores the peak when the estimate changed); a peak above the declared
    memory is a notice."""
    peak = math.ceil(peak_mb())
    path = job_record_path(rule, wildcards, directory, "memory")
    write_json(path, {"rule": rule, "job": job_name(wildcards), "peak_mb": peak,
                      "declared_mb": declared_mb, **({"model_mb": model_mb} if model_mb else {})})
    log.info("peak memory %d MB (declared mem_mb: %s)", peak, declared_mb)
    if declared_mb and peak > declared_mb:
        notice(rule, wildcards, f"{rule} jobs peaked above the memory they declared (peaks in {MEMORY_DIR}/): on "
                                f"a cluster they would be killed; the next run asks for {HEADROOM} x the peak")
    return peak


def measured_peak(rule, wildcards, directory=MEMORY_DIR, model_mb=None):
    """The job's peak as its last run measured it (MB), or None; None too when it was measured under another
    model estimate than `model_mb` (the batch size or input size changed since)."""
    path = job_record_path(rule, wildcards, directory, "memory")
    try:
        record = json.loads(path.read_text())
        peak = int(record["peak_mb"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if model_mb and record.get("model_mb") and record["model_mb"] != model_mb:
        return None
    return peak


def asked_mb(rule, configured_mb, estimate=None, directory=MEMORY_DIR):
    """mem_mb for a rule's jobs (a Snakemake resource function): `configured_mb`, or the job's need
    when that is more, times the attempt. `estimate`: wildcards -> the MB its model needs, or None."""
    said = []  # the raised request is said once per rule and run: a study has many jobs of a rule

    def mem_mb(wildcards, attempt):
        job = dict(wildcards.items())
        model_mb = estimate(wildcards) if estimate else None
        peak = measured_peak(rule, job, directory, model_mb)
        if peak:
            needed, why = math.ceil(HEADROOM * peak), f"{HEADROOM} x the {peak} MB it peaked at on an earlier run"
        else:
            needed = math.ceil(model_mb / (1 - DATA_SHARE)) if model_mb else 0
            why = f"the {model_mb} MB its model needs to train, and room for its data"
        if needed > configured_mb and not said:
            said.append(job)
            print(f"convbench: {rule} asks for more than its configured {configured_mb} MB: e.g. {job_name(job)} "
                  f"{needed} MB, {why}", file=sys.stderr)
        asked = max(configured_mb, needed) * attempt
        limit = limit_mb()
        if limit and asked > limit:
            if job not in capped:
                capped.append(job)
                print(f"convbench: {rule} {job_name(job)} would ask for {asked} MB; capped at resources.max_mem_mb "
                      f"{limit} MB", file=sys.stderr)
            return limit
        return asked

    capped = []
    return mem_mb
