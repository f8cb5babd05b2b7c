"""A failed job's error as one line, printed at the end of the run like a config error: each job
records its own (workflow/scripts/_bootstrap.py hooks uncaught exceptions), the Snakefile's
onerror handler prints them all. The traceback stays in the job's log.

A job that never got to record anything (cancelled by SLURM, rejected by sbatch, killed) has the
executor's reason instead, recorded by the main process (convbench.base.snakemake_hooks). Whether an
error will recur decides whether the job is retried: bad data, a bad config or a missing package
fail once; a killed or preempted job is retried. Jobs also leave notices (a job given a GPU that
TensorFlow cannot see), printed at the end of every run, failed or not."""

import errno
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from .atomic import DiskFull, disk_full_message, write_json

ERRORS_DIR = ".snakemake/convbench-errors"  # relative to the workflow's working directory, shared with cluster jobs
MAX_CHARS = 400
# Errors that a retry of the same job meets again: the data, the config or the code is wrong, not the
# node. A class can say so itself with a `recurs` attribute (convbench's TrainingDiverged, DiskFull...).
# Everything else (MemoryError, network and file-system OSErrors, TensorFlow's runtime errors, a
# failed download) may pass, and is retried.
RECURRING = (ValueError, TypeError, LookupError, AttributeError, ImportError, NotImplementedError, AssertionError,
             FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def one_line(error):
    """What went wrong, in one line: a convbench error's own message (it names the file and the fix),
    anything else prefixed with its type. A full disk names the path being written."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC and not isinstance(error, DiskFull):
        return disk_full_message(error.filename or Path.cwd() / "results")
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or "(no message)"
    if not type(error).__module__.startswith("convbench"):
        text = f"{type(error).__name__}: {text}"
    return _shorten(text)


def _shorten(text):
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


# sbatch refusing a job for its request (a partition, account, QOS or GPU type the cluster does not
# have) refuses it again; a busy or restarting controller may not.
REJECTED_REQUEST = re.compile(r"sbatch: error: (?!.*(?:temporar|timed out|try again|busy))"
                              r".*(?:invalid|not available|not allowed|not permitted|denied|unknown|no such)", re.I)


def recurs(error):
    """Whether running the same job again meets the same error (then it is not retried)."""
    return bool(getattr(error, "recurs", isinstance(error, RECURRING)))


def job_record_path(rule, wildcards, directory, kind="job"):
    """One file per job and kind: `job` (its own exception), `executor` (the executor's reason), `notice`,
    `memory` (convbench.base.memory)."""
    key = json.dumps([rule, {name: str(value) for name, value in wildcards.items()}], sort_keys=True).encode()
    suffix = "" if kind == "job" else f".{kind}"
    return Path(directory) / f"{rule}-{hashlib.sha256(key).hexdigest()[:16]}{suffix}.json"


def job_name(wildcards):
    return "/".join(map(str, wildcards.values()))


def record(rule, wildcards, log, error, directory=ERRORS_DIR):
    """Keep this job's error for the end-of-run summary."""
    write_json(job_record_path(rule, wildcards, directory),
               {"rule": rule, "job": job_name(wildcards), "log": log, "message": one_line(error),
                "recurs": recurs(error)})


def _message_lines(message):
    """The executor's message up to its first section of details (the SLURM plugin's `sbatch call:`)."""
    for line in str(message or "").splitlines():
        if line.strip().endswith(":"):
            break
        if line.strip():
            yield line.strip()


def record_executor_error(rule, wildcards, message, logs, group=(), directory=ERRORS_DIR):
    """The executor's reason for a failed job (SLURM's state, sbatch's error), in one line: used for the
    summary when the job recorded nothing itself. `group`: the (rule, wildcards) of every job of the
    group job it ran in, if any."""
    text = "; ".join(_message_lines(message)) or "the job ended without an error of its own (killed? out of memory?)"
    members = sorted(job_record_path(*job, directory).stem for job in group)
    write_json(job_record_path(rule, wildcards, directory, "executor"),
               {"rule": rule, "job": job_name(wildcards), "log": ", ".join(map(str, logs)) or None,
                "message": _shorten(text), "group": members,
                "recurs": bool(REJECTED_REQUEST.search(str(message or "")))})


def error_recurs(rule, wildcards, directory=ERRORS_DIR):
    """Whether the job failed in a way a retry would meet again: its own error, or sbatch's refusal."""
    for kind in ("job", "executor"):
        try:
            if json.loads(job_record_path(rule, wildcards, directory, kind).read_text()).get("recurs"):
                return True
        except (OSError, ValueError):
            continue
    return False


_this_job = {}  # set by workflow/scripts/_bootstrap.py in a rule's process: (rule, wildcards)


def started(rule, wildcards, directory=ERRORS_DIR):
    """A job starts (a retry included): takes back its earlier attempt's records; notices go to it."""
    _this_job.update(rule=rule, wildcards=wildcards)
    forget(rule, wildcards, directory)


def notice_this_job(message, directory=ERRORS_DIR):
    """notice() for the job this process runs; nothing outside a rule's process (tests, the CLI)."""
    if _this_job:
        notice(_this_job["rule"], _this_job["wildcards"], message, directory)


def notice(rule, wildcards, message, directory=ERRORS_DIR):
    """Something the user must know though the job succeeded (printed at the end of the run)."""
    write_json(job_record_path(rule, wildcards, directory, "notice"),
               {"rule": rule, "job": job_name(wildcards), "message": message})


def forget(rule, wildcards, directory=ERRORS_DIR):
    """A job starting again (a retry) takes back what its earlier attempt recorded."""
    for kind in ("job", "executor", "notice"):
        job_record_path(rule, wildcards, directory, kind).unlink(missing_ok=True)


def clear(directory=ERRORS_DIR):
    """At the start of a run: earlier runs' errors are not this run's."""
    shutil.rmtree(directory, ignore_errors=True)


def _records(directory, pattern):
    records = {}
    for path in sorted(Path(directory).glob(pattern)) if os.path.isdir(directory) else []:
        try:
            records[path.name.split(".")[0]] = json.loads(path.read_text())  # by job: rule-<hash>
        except (OSError, ValueError):
            continue
    return records


def summary(directory=ERRORS_DIR):
    """The run's failed jobs, one line each: rule, job, message, log; empty when none recorded. A job's
    own error wins over the executor's reason; the members of a group job that failed as a whole
    (cancelled, rejected) share one line."""
    own = _records(directory, "*-????????????????.json")
    lines = [f"{entry['rule']}{' ' + entry['job'] if entry['job'] else ''}: {entry['message']} "
             f"(traceback: {entry['log']})" for entry in own.values()]
    groups = {}
    for key, entry in _records(directory, "*.executor.json").items():
        members = entry.get("group") or [key]
        if not set(members) & set(own):  # a job of it said why itself
            groups.setdefault((tuple(members), entry["message"]), []).append(entry)
    for (_, message), entries in groups.items():
        entries.sort(key=lambda entry: entry["rule"])
        rules = "+".join(entry["rule"] for entry in entries)
        logs = ", ".join(dict.fromkeys(log for entry in entries if entry["log"] for log in entry["log"].split(", ")))
        job = entries[0]["job"]
        lines.append(f"{rules}{' ' + job if job else ''}: {message}" + (f" (log: {logs})" if logs else ""))
    return sorted(lines)


def notices(directory=ERRORS_DIR):
    """What jobs of the run asked to tell the user, one line per message (with how many jobs and one)."""
    by_message = {}
    for entry in _records(directory, "*.notice.json").values():
        by_message.setdefault(entry["message"], []).append(f"{entry['rule']} {entry['job']}".strip())
    return [f"{message} ({len(jobs)} job(s), e.g. {sorted(jobs)[0]})" for message, jobs in sorted(by_message.items())]
