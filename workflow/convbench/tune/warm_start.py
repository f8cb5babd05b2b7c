"""Trials that start warm (`warm_start.trials`): one process per machine, environment and code imports
TensorFlow and Keras once and forks each search trial's training from there, so that a trial no longer pays
the ~3.5 s import of its own (BENCHMARKS.md, "Where a trial's time goes"). A trial's job stays an ordinary
Snakemake job: it asks the warm process for a child, hands it its log, its directory and its environment,
and waits for the child's exit status exactly as it waits for a fresh process (convbench.tune.trial).

- Same results: the warm process has only imported; TensorFlow's runtime (threads, devices, seeds) starts
  in the child, after the job's environment is in place, as in a fresh process (tested: the same losses and
  accuracies to the last bit).
- One warm process per key: the Python interpreter (a conda env), the convbench package and its sources'
  sizes and times, KERAS_HOME and the environment variables TensorFlow reads when it is imported. Another
  key starts its own. It ends once the Snakemake runs it served have ended, after `idle_s` without a trial,
  or when its socket is removed.
- A job that dies (killed, cancelled) closes its connection, and its child ends at once: no trial trains
  on behind a stopped run. The job counts its child's memory as its own (convbench.base.memory).
- Where a warm process cannot start, the trial starts a fresh process, as before, and its log says why.
"""

import hashlib
import json
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

# Environment variables TensorFlow, Keras and their libraries may read while being imported: a warm process
# imported under other values would not be what a fresh process is.
IMPORT_TIME_PREFIXES = ("TF_", "KERAS_", "XLA_", "CUDA_", "NVIDIA_", "OMP_", "MKL_", "DNNL_", "ONEDNN_", "LD_",
                        "PYTHON")
START_TIMEOUT_S = 300  # importing TensorFlow on a loaded node can take a minute
HEADER = struct.Struct("!Q")  # a message's length, before its JSON
SOCKET_PATH_MAX = 100  # AF_UNIX allows 108 bytes on Linux, 104 on macOS


def wanted(setting, resources):
    """Whether trials start warm: `auto` where it is safe and pays, that is on Linux, outside a SLURM job (a
    warm process would end with the first job's allocation, which SLURM cleans up) and for CPU-only trials
    (a GPU job's devices are claimed per job before TensorFlow starts)."""
    if setting in (True, False):
        return setting
    return sys.platform == "linux" and not os.environ.get("SLURM_JOB_ID") and not int(resources.get("gpu") or 0)


def starter(setting, idle_s, resources, keras_home):
    """What train_isolated starts a trial's process with: run_trial when trials start warm, else None."""
    if not wanted(setting, resources):
        return None
    return lambda spec_path, python: run_trial(spec_path, keras_home, idle_s, python)


def run_trial(spec_path, keras_home, idle_s, python=sys.executable):
    """Run `python -m convbench.tune.trial spec_path` in a child forked from the warm process. Returns its
    exit code as subprocess does (negative: the signal that ended it), or None when no warm process could
    serve it (the caller then starts a fresh process)."""
    address = server_address(keras_home)
    try:
        connection = connect_or_start(address, keras_home, idle_s, python)
    except (OSError, TimeoutError) as error:
        log.warning("no warm process for this trial (%s): it starts a fresh process", error)
        return None
    with connection:
        request = {"spec_path": str(Path(spec_path).resolve()), "cwd": os.getcwd(), "env": dict(os.environ),
                   "run": snakemake_run()}
        sys.stdout.flush(), sys.stderr.flush()
        send_message(connection, request, fds=[1, 2])  # the child writes to this job's log
        started = receive_message(connection)
        if started is None:
            log.warning("the warm process closed before starting this trial: it starts a fresh process")
            return None
        from ..base.memory import watch_children

        watched = watch_children()
        watched.adopt(started["pid"])
        log.info("trial training in process %d, forked from warm process %d", started["pid"], started["server"])
        ended = receive_message(connection)
        watched.sample()
        watched.release(started["pid"])
    if ended is None:
        raise OSError(f"the warm process ended while this trial trained (its log: {address.with_suffix('.log')})")
    return ended["returncode"]


def snakemake_run():
    """(pid, start time) of the Snakemake run this job belongs to, its outermost `snakemake` ancestor (None when
    none is found): the warm process ends once the runs it served have ended."""
    run, pid = None, os.getppid()
    while pid > 1:
        identity = process_identity(pid)
        if identity is None:
            break
        if b"snakemake" in identity[2]:
            run = identity[:2]
        pid = identity[3]
    return run


def process_identity(pid):
    """(pid, start time, command line, parent pid) of a live process, from /proc; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after the command's name, which may hold spaces
    return pid, int(fields[19]), cmdline, int(fields[1])


def alive(run):
    identity = process_identity(run[0])
    return identity is not None and identity[1] == run[1]


def runs_ended(runs):
    """Whether every Snakemake run served so far has ended (False before the first request)."""
    return bool(runs) and not any(map(alive, runs))


def server_address(keras_home):
    """The warm process's socket for this job's key (see the module's docstring)."""
    package = Path(__file__).resolve().parents[1]
    sources = sorted((str(path.relative_to(package)), path.stat().st_mtime_ns, path.stat().st_size)
                     for path in package.rglob("*.py"))
    environment = sorted((key, value) for key, value in os.environ.items() if key.startswith(IMPORT_TIME_PREFIXES))
    key = json.dumps([sys.executable, str(package), sources, str(Path(keras_home).resolve()), environment])
    name = f"convbench-{os.getuid()}/trials-{hashlib.sha256(key.encode()).hexdigest()[:16]}.sock"
    # the first of these where the socket's path fits AF_UNIX's 108 bytes (a cluster's TMPDIR can be long)
    bases = [os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"]
    address = next(Path(base) / name for base in bases if base and len(str(Path(base) / name)) < SOCKET_PATH_MAX)
    address.parent.mkdir(mode=0o700, exist_ok=True)
    return address


def connect_or_start(address, keras_home, idle_s, python):
    """A connection to the warm process at `address`, started first when none answers (one job starts it;
    the others wait for it under a lock)."""
    from ..base.atomic import taking_turns

    connection = connect(address)
    if connection:
        return connection
    with taking_turns(address.parent / "starting.lock"):  # one for every key: starting is rare
        connection = connect(address)
        if connection:
            return connection
        address.unlink(missing_ok=True)
        from .trial import child_environment

        environment = {**child_environment(), "KERAS_HOME": str(Path(keras_home).resolve())}
        with open(address.with_suffix(".log"), "ab") as server_log:
            server = subprocess.Popen(
                [python, "-m", __name__, str(address), str(idle_s)], env=environment, cwd="/",
                stdin=subprocess.DEVNULL, stdout=server_log, stderr=server_log, start_new_session=True)
        log.info("starting warm process %d for trials (%s)", server.pid, address)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise OSError(f"the warm process ended with exit code {server.returncode} (its log: "
                              f"{address.with_suffix('.log')})")
            connection = connect(address)
            if connection:
                return connection
            time.sleep(0.05)
        server.kill()
        raise TimeoutError(f"the warm process did not answer within {START_TIMEOUT_S} s")


def connect(address):
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(address))
        return connection
    except OSError:
        connection.close()
        return None


def send_message(connection, message, fds=()):
    payload = json.dumps(message).encode()
    data = HEADER.pack(len(payload)) + payload
    sent = socket.send_fds(connection, [data], list(fds)) if fds else connection.send(data)
    connection.sendall(data[sent:])


def receive_message(connection, fds=0):
    """The next message (and the descriptors sent with it, when `fds`); None once the other side closed."""
    data, received, *_ = socket.recv_fds(connection, 65536, fds) if fds else (connection.recv(65536), [])
    while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
        more = connection.recv(65536)
        if not more:
            return (None, received) if fds else None
        data += more
    message = json.loads(data[HEADER.size:HEADER.size + HEADER.unpack_from(data)[0]])
    return (message, received) if fds else message


def serve(address, idle_s):
    """The warm process: import what a trial imports, then fork one child per request until idle."""
    from .trial import import_keras_without_extras

    import_keras_without_extras()
    import tensorflow  # noqa: F401

    from ..base import runtime  # noqa: F401
    from ..data import prepared  # noqa: F401
    from ..models import study  # noqa: F401
    from ..train import training  # noqa: F401
    from . import trial

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(f"{address}.{os.getpid()}")
    listener.listen(64)
    os.rename(f"{address}.{os.getpid()}", address)  # answers only once it can serve
    own_socket = os.stat(address).st_ino
    children, runs, last_active = {}, set(), time.monotonic()
    print(f"warm process {os.getpid()} serving {address}", flush=True)
    while children or (time.monotonic() - last_active < idle_s and not runs_ended(runs)):
        if select.select([listener], [], [], 0.2)[0]:
            connection, _ = listener.accept()
            pid, run = fork_trial(connection, [listener, *children.values()], trial)
            if pid:
                children[pid] = connection
            if run:
                runs.add(tuple(run))
        for pid, returncode in ended_children():
            with children.pop(pid) as connection:
                try:
                    send_message(connection, {"returncode": returncode})
                except OSError:
                    pass  # the job is gone: its child ended with it
        if children:
            last_active = time.monotonic()
        if not same_socket(address, own_socket):
            break  # removed or replaced: a newer warm process serves this key
    listener.close()
    if same_socket(address, own_socket):
        Path(address).unlink()
        Path(address).with_suffix(".log").unlink(missing_ok=True)  # kept only when it ended otherwise


def fork_trial(connection, others, trial):
    """Fork a child for the request on `connection`: (its pid, the Snakemake run it serves); the child never
    returns. (None, None) when the request is bad.
    `others`: the sockets the child must not keep open (the listener, other jobs' connections)."""
    try:
        request, fds = receive_message(connection, fds=2)
    except (OSError, ValueError) as error:
        print(f"a request could not be read: {error}", flush=True)
        connection.close()
        return None, None
    if request is None or len(fds) != 2:
        connection.close()
        return None, None
    sys.stdout.flush(), sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        for other in others:
            other.close()
        become_the_job(request, fds, connection)
        trial.main(request["spec_path"])  # ends the process (os._exit)
    for fd in fds:
        os.close(fd)
    try:
        send_message(connection, {"pid": pid, "server": os.getpid()})
    except OSError:
        os.kill(pid, signal.SIGKILL)  # the job left before its child started
    return pid, request.get("run")


def become_the_job(request, fds, connection):
    """In the child: the job's log, directory and environment, and an end as soon as the job's is."""
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in fds:
        os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])

    def end_with_the_job():
        while connection.recv(4096):
            pass
        os._exit(128 + signal.SIGTERM)  # the job closed its end: it was stopped, so is its training

    threading.Thread(target=end_with_the_job, daemon=True).start()


def ended_children():
    """(pid, exit code as subprocess gives it) of every child that has ended since the last call."""
    ended = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, os.waitstatus_to_exitcode(status)))


def same_socket(address, inode):
    try:
        return os.stat(address).st_ino == inode
    except OSError:
        return False


if __name__ == "__main__":
    serve(sys.argv[1], float(sys.argv[2]))
