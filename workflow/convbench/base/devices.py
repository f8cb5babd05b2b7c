"""GPU device slots for local runs.

Snakemake counts `gpu` resources but never sets CUDA_VISIBLE_DEVICES, so concurrent GPU jobs
would all land on device 0. Each GPU job claims free device slots with file locks in the
workflow's state directory and exports CUDA_VISIBLE_DEVICES for them. The kernel drops a
process's locks when it exits, crash or kill -9 included, so a slot is never leaked.
Under a scheduler that already set CUDA_VISIBLE_DEVICES (SLURM), that choice is kept.
"""

import fcntl
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

_held = []  # open lock files: the claim lasts as long as the process


def visible_gpu_count():
    """GPUs on this machine: CONVBENCH_GPU_COUNT if set (tests, odd drivers), else nvidia-smi's count."""
    if "CONVBENCH_GPU_COUNT" in os.environ:
        return int(os.environ["CONVBENCH_GPU_COUNT"])
    if not shutil.which("nvidia-smi"):
        return 0
    result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    return sum(line.startswith("GPU ") for line in result.stdout.splitlines())


def local_resource_limits(memory_share=0.9):
    """What a local run may hand out at once: every GPU of the machine, and `memory_share` of its
    memory (Snakemake only enforces resources that have a limit: without these, several GPU jobs
    would share one GPU and concurrent training jobs could ask for more memory than there is)."""
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return {"gpu": visible_gpu_count(), "mem_mb": int(memory_share * memory_mb)}


def claim_gpus(count, lock_dir, timeout=None, poll=1.0):
    """Claim `count` free GPU slots, export CUDA_VISIBLE_DEVICES, and return the device ids.

    A job asking for no GPU gets none (CUDA_VISIBLE_DEVICES=""), so CPU jobs never take GPU memory.
    Under SLURM the scheduler's allocation is kept as it is.
    """
    if os.environ.get("SLURM_JOB_ID"):
        # The scheduler allocated the devices (--gpus or --gres) and set CUDA_VISIBLE_DEVICES.
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        log.info("SLURM job %s: CUDA_VISIBLE_DEVICES=%s", os.environ["SLURM_JOB_ID"], visible)
        return [device for device in visible.split(",") if device]
    if count == 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return []
    total = visible_gpu_count()
    if count > total:
        raise RuntimeError(f"the job asks for {count} GPU(s) but this machine has {total}; "
                           "lower resources.gpu in the config or run on a machine with more GPUs")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        claimed = _try_claim(count, total, lock_dir)
        if claimed is not None:
            ids = [str(device) for device in claimed]
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
            log.info("claimed GPU slot(s) %s", ",".join(ids))
            return ids
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"no {count} free GPU slot(s) of {total} within {timeout} s")
        time.sleep(poll)


def _try_claim(count, total, lock_dir):
    """Lock `count` free slots at once, or none (so two jobs cannot each hold half of what they need)."""
    taken = []
    for device in range(total):
        handle = open(lock_dir / f"gpu{device}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        taken.append((device, handle))
        if len(taken) == count:
            _held.extend(handle for _, handle in taken)
            return [device for device, _ in taken]
    for _, handle in taken:
        handle.close()  # releases the lock
    return None
