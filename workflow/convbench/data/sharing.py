"""Prepared data shared between studies (`storage.prepared_dir` on a cluster): known by its content,
never rewritten under another study.

Every manifest records the preparation key of what it holds (the dataset's definition, its raw
files' published hashes or its folders' content fingerprint, the input spec and the data settings)
and the working directory of the study that prepared it. A study whose key matches reuses the data
as it is, wherever it was prepared; one whose key differs re-prepares only data it prepared itself
and nobody else reads. Studies that read another's data sign in beside it (`<spec>.readers/`).
"""

import hashlib
import json
import os
from pathlib import Path

from ..base.atomic import read_json, write_json

# Bump when preparing the same inputs with the same settings writes other shards.
PREPARATION_VERSION = 1


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


def preparation_constraint(reused):
    """A regex for the `spec` wildcard of the preparation rule that matches every input spec but those
    of the prepared data the study reuses ({dataset: [spec, ...]}): that data then has no producing
    job, so nothing the study runs (a download for another input size) can re-prepare it. The
    lookbehind names the dataset: wildcard constraints cannot relate two wildcards otherwise."""
    conditions = [f"(?:(?<!/{dataset}/)|(?!(?:{'|'.join(sorted(specs))})(?:\\.json)?$))"
                  for dataset, specs in sorted(reused.items()) if specs]
    return "".join(conditions) + r"\d+x\d+x\d+"
