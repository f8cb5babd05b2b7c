"""Logging finished experiments to MLflow (`tracking: {mlflow: {uri, experiment}}`).

Optional: MLflow comes with `pip install -e '.[mlflow]'` (or envs/mlflow.yaml) and is imported
only by the logging job, so a study that does not ask for it never needs it. One MLflow run per
trained experiment: its effective settings as params, its summary.csv metrics (test split) as
metrics, its history as step metrics (train_*, val_*, learning_rate, epoch_seconds per epoch),
model, metadata and figures as artifacts, and tags for its identity and the git commit.
"""

import csv
import logging
import os
import time
from pathlib import Path

from ..base.atomic import read_json, taking_turns, write_json
from ..base.config import flatten
from ..base.vcs import git_commit
from ..evaluate.metrics import read_metrics

log = logging.getLogger(__name__)

ARTIFACTS = ("model.keras", "train_meta.json", "metrics.json", "history.csv")
BATCH = 100  # MLflow accepts at most 100 params (and 1000 metrics) per log_batch call


class TrackingError(RuntimeError):
    """The run could not be logged; the experiment's results are untouched."""


def store_location(uri):
    """(MLflow tracking URI, artifact location for a new experiment or None, lock file or None).

    A server (http://, https://, databricks) or database URI (sqlite://, postgresql://, ...) is used
    as given. A plain path is a local store folder: MLflow 3 refuses its old file store, so the
    folder holds an SQLite database (mlflow.db) and the artifacts (artifacts/). Jobs logging to one
    SQLite file take turns (the lock file): MLflow's first-use schema migration is not safe to run twice at once.
    """
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        return uri, None, database.with_name(database.name + ".lock")
    if "://" in uri or uri == "databricks":
        return uri, None, None
    folder = Path(uri).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri(), folder / "mlflow.db.lock"


def history_metrics(history_path):
    """[(key, value, step)] of every epoch's row in history.csv."""
    rename = {"seconds": "epoch_seconds", "learning_rate": "learning_rate"}
    metrics = []
    with open(history_path, newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(row.pop("epoch"))
            for column, value in row.items():
                if value not in ("", None):
                    key = rename.get(column, column if column.startswith("val_") else f"train_{column}")
                    metrics.append((key, float(value), step))
    return metrics


def log_experiment(uri, experiment_name, experiment_dir, run_file, workflow_dir="."):
    """Log one experiment as a new MLflow run and record the run in `run_file`."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as error:
        raise TrackingError(f"tracking.mlflow needs MLflow ({error}): pip install -e '.[mlflow]', "
                            "or run Snakemake with --sdm conda") from None
    # Fail in seconds, not minutes, when the server is down (MLflow's defaults retry for ~2 min).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    folder = Path(experiment_dir)
    meta, metrics = read_json(folder / "train_meta.json"), read_json(folder / "metrics.json")
    run_name = f"{meta['dataset']}/{meta['architecture']}/{meta['variant']}/seed{meta['seed']}"
    tracking_uri, artifact_location, lock_path = store_location(uri)
    with taking_turns(lock_path):
        run_id, experiment_id = _log(MlflowClient(tracking_uri), uri, experiment_name, artifact_location, folder,
                                     meta, metrics, run_name, workflow_dir)
    write_json(run_file, {"tracking_uri": uri, "experiment": experiment_name, "experiment_id": experiment_id,
                          "run_id": run_id, "run_name": run_name})
    log.info("logged %s as MLflow run %s in experiment %r at %s", run_name, run_id, experiment_name, uri)
    return run_id


def _log(client, uri, experiment_name, artifact_location, folder, meta, metrics, run_name, workflow_dir):
    """Create the run and log everything into it; (run id, experiment id)."""
    import requests
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    run_id = None
    try:
        experiment = client.get_experiment_by_name(experiment_name)
        experiment_id = (experiment.experiment_id if experiment
                         else client.create_experiment(experiment_name, artifact_location=artifact_location))
        tags = {"dataset": meta["dataset"], "architecture": meta["architecture"], "variant": meta["variant"],
                "seed": str(meta["seed"]), "convbench.config_hash": meta["config_hash"],
                "mlflow.source.git.commit": git_commit(workflow_dir) or "not a git checkout"}
        run_id = client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        params = {**{f"settings.{key}": value for key, value in flatten(meta["settings"]).items()},
                  "input_shape": "x".join(map(str, meta["input_shape"])), "threads": meta.get("threads"),
                  "precision": meta.get("precision"), "parameters": meta["parameters"]}
        now = int(time.time() * 1000)
        # speed is measured per dataset once all its models are trained (convbench.evaluate.cost): not here
        values = [Metric(name, float(value), now, 0) for name, value in read_metrics(metrics, meta, None).items()
                  if isinstance(value, (int, float))]
        values += [Metric(key, value, now, step) for key, value, step in history_metrics(folder / "history.csv")]
        param_list = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, max(len(param_list), len(values)), BATCH):
            client.log_batch(run_id, metrics=values[start : start + BATCH], params=param_list[start : start + BATCH])
        for name in ARTIFACTS:
            client.log_artifact(run_id, str(folder / name))
        client.log_artifacts(run_id, str(folder / "figures"), "figures")
        client.set_terminated(run_id, "FINISHED")
    except (MlflowException, requests.exceptions.RequestException, OSError) as error:
        if run_id is not None:
            try:
                client.set_terminated(run_id, "FAILED")
            except Exception:  # the server that just failed may not take this either
                pass
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrackingError(f"MLflow at {uri} did not take run {run_name}: {reason}. The experiment's results are "
                            "intact: fix tracking.mlflow.uri or start the server, then run Snakemake again "
                            "(only the logging jobs rerun).") from error
    return run_id, experiment_id
