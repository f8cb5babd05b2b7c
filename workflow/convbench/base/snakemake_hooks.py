"""Where Snakemake (9.x) and its executor plugins leave a cluster user without an answer,
filled in from the main process (workflow/rules/common.smk installs them; jobs never do):

- `GroupJob.log_error` drops the executor's message (SLURM's state after `scancel`, sbatch's error
  for a bad partition), so a failed experiment group showed `message: None`. The reason is kept for
  the end-of-run summary (convbench.base.job_errors), for plain jobs as for groups.
- `JobScheduler._handle_error` retries every failure up to `retries` times. A job whose own error
  recurs on every attempt (bad data, a bad config, a missing package: job_errors.recurs) fails once.
- `RemoteExecutor.sleep` waits out its whole interval between status checks (up to 180 s with the
  SLURM plugin) even when Snakemake is shutting down; it now wakes up every second to check.

Each hook wraps the original and changes nothing else. Snakemake's internals can move between
releases: `install` returns the hooks it could install, and tests/test_cluster_failures.py fails when
one goes missing.
"""

import asyncio
import time

from . import job_errors


def _job_logs(job, aux_logs):
    """The executor's logs (SLURM's job log) first: after a cancel or a rejection the job's own is empty."""
    return [*map(str, aux_logs or []), *map(str, job.log)]


def _members(job):
    return list(job.jobs) if hasattr(job, "jobs") else [job]


def _keep_reason(original, grouped):
    def log_error(self, msg=None, *args, aux_logs=None, **kwargs):
        try:
            members = _members(self)
            group = [(member.rule.name, dict(member.wildcards_dict)) for member in members] if grouped else ()
            if grouped or not kwargs.get("indent"):  # not a group's member, listed by the group's own call
                for member in members:
                    job_errors.record_executor_error(member.rule.name, dict(member.wildcards_dict), msg,
                                                      _job_logs(member, aux_logs), group, job_errors.ERRORS_DIR)
        except Exception:  # never let bookkeeping hide Snakemake's own report
            pass
        return original(self, msg, *args, aux_logs=aux_logs, **kwargs)

    return log_error


def _no_retry_of_recurring_errors(original):
    def handle_error(self, job, *args, **kwargs):
        if any(job_errors.error_recurs(member.rule.name, dict(member.wildcards_dict), job_errors.ERRORS_DIR)
               for member in _members(job)):
            job.attempt = job.restart_times + 1  # Snakemake retries while restart_times > attempt - 1
        return original(self, job, *args, **kwargs)

    return handle_error


def _wake_up_to_shut_down(original):
    async def sleep(self):
        duration = (self.workflow.remote_execution_settings.seconds_between_status_checks
                    if self.next_seconds_between_status_checks is None else self.next_seconds_between_status_checks)
        deadline = time.monotonic() + duration
        while self.wait and time.monotonic() < deadline:
            await asyncio.sleep(min(1.0, deadline - time.monotonic()))

    return sleep


def install():
    """Wrap Snakemake's methods (once per process); returns the names of the hooks in place."""
    import snakemake.jobs as jobs
    import snakemake.scheduling.job_scheduler as scheduler
    import snakemake_interface_executor_plugins.executors.remote as remote

    targets = [
        ("Job.log_error", jobs.Job, "log_error", lambda original: _keep_reason(original, grouped=False)),
        ("GroupJob.log_error", jobs.GroupJob, "log_error", lambda original: _keep_reason(original, grouped=True)),
        ("JobScheduler._handle_error", scheduler.JobScheduler, "_handle_error", _no_retry_of_recurring_errors),
        ("RemoteExecutor.sleep", remote.RemoteExecutor, "sleep", _wake_up_to_shut_down),
    ]
    installed = []
    for name, owner, attribute, wrap in targets:
        original = owner.__dict__.get(attribute)
        if original is None:
            continue
        if not getattr(original, "_convbench_hook", False):
            hooked = wrap(original)
            hooked._convbench_hook = True
            setattr(owner, attribute, hooked)
        installed.append(name)
    return installed
