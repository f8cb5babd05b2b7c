"""MLflow tracking: every trained experiment becomes a run in a local store; reruns log only what retrained;
an unreachable server fails only the logging job."""

import shutil
import socket

import pandas as pd
import pytest
from conftest import planned_jobs, run_snakemake
from convbench.base.atomic import read_json
from convbench.deploy.mlflow_log import store_location

mlflow = pytest.importorskip("mlflow", reason="the [mlflow] extra (part of [test]) is not installed")

pytestmark = pytest.mark.integration

EXPERIMENT = "results/experiments/digits/{arch}/default/seed1"


@pytest.fixture(scope="module")
def tracked(local_study, tmp_path_factory):
    """A copy of the tiny study, logged to a local MLflow store."""
    study = tmp_path_factory.mktemp("tracked") / "study"
    shutil.copytree(local_study, study, symlinks=True)
    store = study.parent / "store"
    config = [f"tracking={{mlflow: {{uri: {store}, experiment: tiny}}}}"]
    output = run_snakemake(study, "--cores", "2", config=config)
    return study, store, config, output


def runs(store, experiment="tiny"):
    mlflow.set_tracking_uri(store_location(str(store))[0])
    return mlflow.search_runs(experiment_names=[experiment], order_by=["start_time ASC"])


def test_each_experiment_is_one_run_with_settings_metrics_history_and_artifacts(tracked):
    study, store, _, output = tracked
    # nothing retrains; the report shows the configuration in effect, so it is rebuilt
    assert planned_jobs(output) == {"all": 1, "build_report": 1, "log_mlflow": 2}
    found = runs(store)
    summary = pd.read_csv(study / "results/summary.csv")
    assert sorted(found["tags.mlflow.runName"]) == ["digits/bn_cnn/default/seed1", "digits/simple_cnn/default/seed1"]
    client = mlflow.tracking.MlflowClient()
    for row in found.to_dict("records"):
        arch, run_id = row["tags.architecture"], row["run_id"]
        assert row["metrics.accuracy"] == pytest.approx(summary.set_index("architecture").loc[arch, "accuracy"])
        record = read_json(study / EXPERIMENT.format(arch=arch) / "mlflow_run.json")
        assert record["run_id"] == run_id and record["experiment"] == "tiny"
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params["settings.learning_rate"] == "0.001" and run.data.params["settings.epochs"] == "3"
        assert {"dataset", "architecture", "variant", "seed", "mlflow.source.git.commit"} <= set(run.data.tags)
        assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [1, 2, 3]
        artifacts = {entry.path for entry in client.list_artifacts(run_id)}
        assert {"model.keras", "train_meta.json", "metrics.json", "history.csv", "figures"} <= artifacts
        assert any(entry.path.endswith("confusion.png") for entry in client.list_artifacts(run_id, "figures"))


def test_a_rerun_logs_only_what_retrained(tracked):
    study, store, config, _ = tracked
    output = run_snakemake(study, "--cores", "2", config=config)
    assert "Nothing to be done" in output and len(runs(store)) == 2
    retrain = EXPERIMENT.format(arch="simple_cnn") + "/model.keras"
    output = run_snakemake(study, "--cores", "2", "--forcerun", retrain, config=config)
    assert planned_jobs(output)["log_mlflow"] == 1
    found = runs(store)
    assert len(found) == 3 and found.iloc[-1]["tags.mlflow.runName"] == "digits/simple_cnn/default/seed1"


def test_an_unreachable_server_fails_only_the_logging_job(local_study, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(local_study, study, symlinks=True)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = [f"tracking={{mlflow: {{uri: 'http://127.0.0.1:{port}'}}}}"]
    target = EXPERIMENT.format(arch="simple_cnn") + "/mlflow_run.json"
    output = run_snakemake(study, "--cores", "2", target, config=config, check=False)
    assert "Error in rule log_mlflow" in output
    log = (study / "results/logs/log_mlflow/digits/simple_cnn/default/seed1.log").read_text()
    assert f"MLflow at http://127.0.0.1:{port} did not take run digits/simple_cnn/default/seed1" in log
    assert "results are intact" in log
    assert (study / EXPERIMENT.format(arch="simple_cnn") / "model.keras").exists()
    assert not (study / EXPERIMENT.format(arch="simple_cnn") / "mlflow_run.json").exists()
