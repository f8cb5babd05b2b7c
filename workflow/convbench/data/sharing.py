"""Prepared data shared between studies (`storage.prepared_dir` on a cluster): known by its content,
never rewritten under another study.

Every manifest records the preparation key of what it holds (the dataset's definition, its raw
files' published hashes or its folders' content fingerprint, the input spec and the data settings)
and the working directory of the study that prepared it. A study whose key matches reuses the data
as it is, wherever it was prepared; one whose key differs re-prepares only data it prepared itself
and nobody else reads. Studies that read another's data sign in beside it (`<spec>.readers/`).

The rules name prepared data by one path whatever `prepared_dir` says: results/prepared, a link to
prepared_dir when that is elsewhere (`rule_prepared_dir`). Snakemake reruns a job whose input paths
changed, so moving prepared_dir would otherwise retrain the whole study.
"""

import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ..base.atomic import read_json, write_json

# Bump when preparing the same inputs with the same settings writes other shards.
PREPARATION_VERSION = 1

log = logging.getLogger(__name__)


def preparation_key(info, spec, fingerprint, *, split_seed, test_fraction, validation_fraction, scaling,
                    validation_holdout="stratified"):
    """What a prepared dataset is, as a hash: equal keys, equal shards. `info`: its DatasetInfo;
    `fingerprint`: its image folders' content fingerprint (None for downloaded files, whose published
    hashes are in `info`). Paths and URLs are left out: moving or respelling them changes nothing."""
    recipe = {
        "version": PREPARATION_VERSION,
        "dataset": info.name,
        "format": info.format,
        "image_shape": list(info.image_shape),
        "num_classes": info.num_classes,
        "class_names": list(info.class_names) if info.class_names else None,
        "files": [[remote.name, remote.sha256] for remote in info.files],
        "fingerprint": fingerprint,
        "spec": spec,
        "data": {"split_seed": split_seed, "test_fraction": test_fraction, "validation_fraction": validation_fraction,
                 "scaling": scaling, "validation_holdout": validation_holdout},
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def test_split_key(key, fingerprint):
    """What a separately prepared test split is: the data it belongs to (its preparation key) and its own
    folder's content fingerprint."""
    return hashlib.sha256(json.dumps([PREPARATION_VERSION, key, fingerprint]).encode()).hexdigest()


def this_study():
    """The study's identity among those sharing prepared data: its working directory."""
    return os.path.realpath(os.getcwd())


def prepared_elsewhere(manifest_path, manifest):
    """Whether another study prepared this data: another working directory wrote it, and it lives
    outside this one (a study copied or moved with its results/ owns its data)."""
    prepared_by = manifest.get("prepared_by")
    if not prepared_by or prepared_by == this_study():
        return False
    return not Path(os.path.realpath(manifest_path)).is_relative_to(this_study())


def readers_dir(manifest_path):
    path = Path(manifest_path)
    return path.with_name(path.name.removesuffix(".json") + ".readers")


def sign_in(manifest_path, manifest):
    """A job of this study reads prepared data another study prepared: say so beside it, so that
    the other study never re-prepares it under this one."""
    if not prepared_elsewhere(manifest_path, manifest):
        return
    study = this_study()
    path = readers_dir(manifest_path) / f"{hashlib.sha256(study.encode()).hexdigest()[:16]}.json"
    if not path.exists():
        write_json(path, {"study": study})


def other_readers(manifest_path):
    """The working directories of the other studies that read this prepared data."""
    folder = readers_dir(manifest_path)
    studies = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            studies.append(read_json(path)["study"])
        except (OSError, ValueError, KeyError):
            continue
    return [study for study in studies if study != this_study()]


def prepared_state(manifest_path, key):
    """What the study does with the prepared data at `manifest_path` (its key: preparation_key):
    "reuse" it as it is (the same content), or "prepare" it (missing, or this study's own and
    outdated: Snakemake's own rerun rules decide, as for data from before keys). Raises ValueError
    when preparing would rewrite data another study prepared or reads."""
    try:
        manifest = read_json(manifest_path)
    except (OSError, ValueError):
        return "prepare"  # missing or unreadable: the preparation job remakes it
    if manifest.get("preparation_key") == key:
        return "reuse"
    manifest_path = os.path.realpath(manifest_path)  # where it is, not the link the rules use
    folder = Path(manifest_path).with_suffix("")
    fix = (f"give this study another storage.prepared_dir, or the same data settings; if no other study "
           f"uses it any more, delete {folder}, {manifest_path} and {readers_dir(manifest_path)}")
    if prepared_elsewhere(manifest_path, manifest):
        raise ValueError(f"storage.prepared_dir: {manifest_path} holds {manifest.get('dataset')} prepared by "
                         f"the study in {manifest['prepared_by']} with other settings or data; this study would "
                         f"overwrite it: {fix}")
    readers = other_readers(manifest_path)
    if readers:
        raise ValueError(f"storage.prepared_dir: {manifest_path} is also read by the study in "
                         f"{', '.join(readers)}; preparing it again with this study's changed settings or "
                         f"data would change that study's data: {fix}")
    return "prepare"


PLANNED = ".snakemake/convbench-planned-data.json"  # {manifest path as the rules give it: [keys a job may find]}


def plan_prepared(planned):
    """The main process's decision, {manifest path: preparation key}, for the run's jobs to check at open
    (convbench.data.prepared.load_prepared): a job may find the key the run planned (its own preparation job
    writes it) or the one on disk when it planned (data Snakemake does not prepare again, such as data from
    releases before keys); data another study prepared again between the decision and a job's read has
    neither, and is refused instead of read. Reused data another study prepared is signed for now, not when
    a job first opens it: the other study sees this reader from the start."""
    expected = {}
    for manifest_path, key in planned.items():
        try:
            manifest = read_json(manifest_path)
        except (OSError, ValueError):
            manifest = {}
        if manifest.get("preparation_key") == key:
            sign_in(manifest_path, manifest)
        expected[manifest_path] = sorted({key, manifest.get("preparation_key")}, key=str)
    write_json(PLANNED, expected)


def expected_keys(manifest_path):
    """The preparation keys a job of this run may find in the manifest at `manifest_path`, or None (no run
    planned it: a test, the CLI, a job of an earlier release's run)."""
    try:
        planned = read_json(PLANNED)
    except (OSError, ValueError):
        return None
    keys = planned.get(os.path.normpath(str(manifest_path))) if isinstance(planned, dict) else None
    return set(keys) if isinstance(keys, list) else None


def preparation_constraint(reused):
    """A regex for the `spec` wildcard of the preparation rule that matches every input spec but those
    of the prepared data the study reuses ({dataset: [spec, ...]}): that data then has no producing
    job, so nothing the study runs (a download for another input size) can re-prepare it. The
    lookbehind names the dataset: wildcard constraints cannot relate two wildcards otherwise."""
    conditions = [f"(?:(?<!/{dataset}/)|(?!(?:{'|'.join(sorted(specs))})(?:\\.json)?$))"
                  for dataset, specs in sorted(reused.items()) if specs]
    return "".join(conditions) + r"\d+x\d+x\d+"


STABLE_PREPARED = "results/prepared"  # the path the rules use (relative to the working directory)
RULE_PATH_RECORD = "results/.prepared_dir_in_rules"  # which path this study's jobs were recorded with


def rule_prepared_dir(configured, create=True):
    """The path the rules give prepared data for `storage.prepared_dir` = `configured`: results/prepared,
    made a link to prepared_dir when that is elsewhere (`create`: the main process; jobs only read).

    A study that gave its own prepared_dir before the link existed recorded its jobs with that path:
    it keeps it while prepared_dir stays, so nothing retrains; once moved, it goes through the link
    too (its jobs' paths change then anyway). Raises ValueError when results/prepared is a folder of
    data and prepared_dir says elsewhere, or a link and prepared_dir says results/prepared."""
    configured = os.path.normpath(configured)
    if os.path.abspath(configured) == os.path.abspath(STABLE_PREPARED):
        configured = STABLE_PREPARED  # the default, spelled another way
    record = Path(RULE_PATH_RECORD)
    written = record.read_text().strip() if record.is_file() else None
    recorded = configured if written is None and _earlier_study(configured) else written
    if recorded not in (None, STABLE_PREPARED) and os.path.normpath(recorded) == configured:
        path = recorded  # an earlier study, prepared_dir unchanged
        if create and not os.path.isdir(path):
            raise ValueError(vanished(configured))
    else:
        path = STABLE_PREPARED
        if create:
            _link_prepared(configured)
    if create and written != path:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(path + "\n")
    return path


def _earlier_study(configured):
    """A study trained before results/prepared could be a link, with its own prepared_dir."""
    return (configured != STABLE_PREPARED and not os.path.lexists(STABLE_PREPARED)
            and any(Path("results/experiments").glob("*/*/*/*/train_meta.json")))


def check_prepared_dir(configured):
    """One line naming the fix for a prepared_dir the link cannot point to: one that holds results/prepared
    (the link would point to itself or an ancestor), one inside it, or one that vanished under its link."""
    here, there = Path(os.path.abspath(STABLE_PREPARED)), Path(os.path.abspath(configured))
    if here == there:
        return
    if here.is_relative_to(there):
        raise ValueError(f"storage.prepared_dir is {configured}, which holds {STABLE_PREPARED} itself: give the prepared "
                         f"data a folder of its own, e.g. {os.path.join(configured, 'prepared-data')} or one on scratch")
    if there.is_relative_to(here):
        raise ValueError(f"storage.prepared_dir is {configured}, inside {STABLE_PREPARED}, the path the rules read it "
                         "through: give a folder outside it (e.g. results/prepared-data or one on scratch)")
    link = Path(STABLE_PREPARED)
    if link.is_symlink() and not link.exists() and os.path.normpath(os.readlink(link)) == os.path.normpath(
            configured if os.path.isabs(configured) else os.path.relpath(configured, link.parent)):
        raise ValueError(vanished(configured))


def vanished(configured):
    return (f"storage.prepared_dir {configured} is gone (a scratch purge?), and with it the prepared data this study's "
            f"results were made from: mkdir -p {configured} and rerun to prepare it there again (what trained on it "
            "retrains), or point prepared_dir where the data now is")


def _link_prepared(configured):
    link = Path(STABLE_PREPARED)
    check_prepared_dir(configured)
    if configured == STABLE_PREPARED:
        if link.is_symlink():
            target = os.readlink(link)
            raise ValueError(f"storage.prepared_dir is {STABLE_PREPARED} again, but {link} links to {target}: "
                             f"move the data back (rm {link} && mv {target} {link}) or prepare it again (rm {link})")
        return
    target = configured if os.path.isabs(configured) else os.path.relpath(configured, link.parent)
    if link.is_symlink():
        if os.path.realpath(link) == os.path.realpath(configured):
            return
    elif link.exists():
        if any(path.is_file() for path in link.rglob("*")):
            raise ValueError(f"storage.prepared_dir is {configured}, but {link} holds this study's prepared data: "
                             f"move it there (mkdir -p {configured} && mv {link}/* {configured}/ && rmdir {link}) "
                             f"or delete it (rm -r {link}) to prepare it there again")
        shutil.rmtree(link)
    Path(configured).mkdir(parents=True, exist_ok=True)
    staged = link.with_name(f".{link.name}.link-{os.getpid()}")
    staged.unlink(missing_ok=True)
    staged.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, staged)
    try:
        os.replace(staged, link)  # a link that moved is never missing
    finally:
        staged.unlink(missing_ok=True)


# A preparation's lease on its output (.<spec>.lease beside it), so that two preparations of the same data (two
# studies sharing prepared_dir, a SLURM retry beside a job thought dead) never write it at once. It is a file
# created with O_CREAT | O_EXCL, which is atomic on the file systems clusters share (NFS v3 and later, Lustre,
# GPFS), where flock() is not dependable (NFS without lockd). The holder touches it every LEASE_BEAT seconds; a
# lease whose mtime a waiter has seen unchanged for LEASE_STALE seconds (by its own clock: no clock is compared
# across nodes) was left by a holder that died, and is broken by renaming it aside, which one contender only wins.
LEASE_BEAT = 20.0
LEASE_STALE = 180.0
LEASE_POLL = 2.0


def lease_path(out_dir):
    out_dir = Path(out_dir)
    return out_dir.with_name(f".{out_dir.name}.lease")


@contextmanager
def preparation_lease(out_dir, beat=LEASE_BEAT, stale=LEASE_STALE, poll=LEASE_POLL):
    """Hold the lease on `out_dir` while the block prepares it; yields whether another preparation held it
    first (then the caller may find the data prepared meanwhile, and adopt it)."""
    path, waited, seen = lease_path(out_dir), False, None
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "study": this_study()}
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            break
        except FileExistsError:
            pass
        mtime = _mtime(path)
        if mtime is None:
            continue  # released meanwhile
        if seen is None or seen[0] != mtime:
            if not waited:
                log.info("waiting: %s is being prepared by %s", out_dir, _holder(path))
            seen, waited = (mtime, time.monotonic()), True
        elif time.monotonic() - seen[1] > stale:
            broken = path.with_name(f"{path.name}.broken-{os.getpid()}")
            try:
                os.rename(path, broken)  # one contender wins; the others find the new lease
                log.warning("broke %s's lease on %s: unchanged for %.0f s", _holder(broken), out_dir, stale)
                broken.unlink()
            except FileNotFoundError:
                pass
            seen = None
            continue
        time.sleep(poll)
    with os.fdopen(fd, "w") as stream:
        json.dump(holder, stream)
    stop = threading.Event()
    beating = threading.Thread(target=_beat, args=(path, stop, beat), daemon=True)
    beating.start()
    try:
        yield waited
    finally:
        stop.set()
        beating.join()
        path.unlink(missing_ok=True)


def _beat(path, stop, beat):
    while not stop.wait(beat):
        try:
            os.utime(path)
        except OSError:
            return


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def _holder(path):
    try:
        holder = read_json(path)
        return f"pid {holder['pid']} on {holder['host']} (study {holder['study']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another preparation"
