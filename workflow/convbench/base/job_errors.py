"""A failed job's error as one line, printed at the end of the run like a config error: each job
records its own (workflow/scripts/_bootstrap.py hooks uncaught exceptions), the Snakefile's
onerror handler prints them all. The traceback stays in the job's log."""

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

from .atomic import DiskFull, disk_full_message, write_json

ERRORS_DIR = ".snakemake/convbench-errors"  # relative to the workflow's working directory, shared with cluster jobs
MAX_CHARS = 400


def one_line(error):
    """What went wrong, in one line: a convbench error's own message (it names the file and the fix),
    anything else prefixed with its type. A full disk names the path being written."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC and not isinstance(error, DiskFull):
        return disk_full_message(error.filename or Path.cwd() / "results")
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or "(no message)"
    if not type(error).__module__.startswith("convbench"):
        text = f"{type(error).__name__}: {text}"
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def _record_path(rule, wildcards, directory):
    key = json.dumps([rule, wildcards], sort_keys=True).encode()
    return Path(directory) / f"{rule}-{hashlib.sha256(key).hexdigest()[:16]}.json"


def record(rule, wildcards, log, error, directory=ERRORS_DIR):
    """Keep this job's error for the end-of-run summary."""
    write_json(_record_path(rule, wildcards, directory),
               {"rule": rule, "job": "/".join(map(str, wildcards.values())), "log": log, "message": one_line(error)})


def forget(rule, wildcards, directory=ERRORS_DIR):
    """A job starting again (a retry) takes back what its earlier attempt recorded."""
    _record_path(rule, wildcards, directory).unlink(missing_ok=True)


def clear(directory=ERRORS_DIR):
    """At the start of a run: earlier runs' errors are not this run's."""
    shutil.rmtree(directory, ignore_errors=True)


def summary(directory=ERRORS_DIR):
    """The run's failed jobs, one line each: rule, job, message, log; empty when none recorded."""
    records = []
    for path in sorted(Path(directory).glob("*.json")) if os.path.isdir(directory) else []:
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return [f"{entry['rule']}{' ' + entry['job'] if entry['job'] else ''}: {entry['message']} "
            f"(traceback: {entry['log']})" for entry in records]
