"""The loop end to end, as a user runs it: train, serve (row ids, prediction log, /metrics),
feedback, monitor the logged traffic, retrain warm-started from the first job, promotion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import roc_auc_score

from tests.conftest import DATA
from tests.engine_helpers import automl_in

pytestmark = pytest.mark.slow


def _write(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.read_csv(DATA / "titanic.csv")
    frame.insert(0, "passenger_id", [f"p{i}" for i in range(len(frame))])
    young, old = frame[frame.age < 30], frame[frame.age >= 40].reset_index(drop=True)
    young.to_csv(folder / "young.csv", index=False)
    old.drop(columns=["survived", "alive"]).to_csv(folder / "old_rows.csv", index=False)
    old[["passenger_id", "survived"]].to_csv(folder / "labels.csv", index=False)
    frame[frame.age.notna()].to_csv(folder / "everyone.csv", index=False)
    spec = {
        "spec_version": 1, "name": "titanic-young", "seed": 0, "n_jobs": 1,
        "dataset": {"path": "young.csv", "target": "survived", "drop": ["alive"], "id_column": "passenger_id"},
        "task": "classification", "metric": "roc_auc", "budget": {"time_s": 60, "trials": 4}, "cv": {"folds": 3},
        "candidates": {"include": ["linear", "hist_gradient_boosting"]},
        "register": {"model_name": "titanic", "promote": "if_better"},
    }  # fmt: skip
    (folder / "spec.json").write_text(json.dumps(spec))
    return young, old


def _json(folder: Path, *args: str) -> Any:
    done = automl_in(folder, *args, "--format", "json")
    assert done.returncode in (0, 4), done.stderr
    return json.loads(done.stdout)


def test_serve_log_feedback_monitor_retrain(tmp_path: Path) -> None:
    from automl.serving import ServeSettings, create_app

    _, old = _write(tmp_path)
    ran = automl_in(tmp_path, "run", "spec.json")
    assert ran.returncode == 0, ran.stderr

    conf = ServeSettings(database_url=f"sqlite:///{tmp_path / 'store.db'}", artifact_root=tmp_path / "artifacts")
    records = json.loads(pd.read_csv(tmp_path / "old_rows.csv").to_json(orient="records"))
    with TestClient(create_app(conf, poll=False)) as client:
        answer = client.post("/v1/models/titanic/predict", json={"records": records})
        assert answer.status_code == 200, answer.text
        assert answer.json()["row_ids"] == old["passenger_id"].tolist()
        bad = client.post("/v1/models/titanic/predict", json={"records": [{"age": "old"}]})
        assert bad.status_code == 422
        metrics = client.get("/metrics")
    # Leaving the client stops the server, which writes what the log still holds.
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    requests = {
        (s.labels["model"], s.labels["version"]): s.value
        for s in families["automl_predict_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests == {("titanic", "1"): 1.0}
    rows = [s.value for s in families["automl_predicted_rows"].samples if s.name.endswith("_total")]
    assert rows == [float(len(old))]
    errors = {s.labels["code"]: s.value for s in families["automl_predict_errors"].samples if s.name.endswith("_total")}
    assert errors == {"INPUT_INVALID": 1.0}
    count = [s.value for s in families["automl_predict_latency_seconds"].samples if s.name.endswith("_count")]
    assert count == [1.0]
    alias = [(s.labels["alias"], s.value) for s in families["automl_alias_version"].samples]
    assert alias == [("production", 1.0)]
    assert "automl_prediction_log_rows" in families

    fed = automl_in(tmp_path, "feedback", "titanic", "--input", "labels.csv")
    assert fed.returncode == 0, fed.stderr
    assert f"{len(old)} logged prediction(s)" in fed.stdout

    result = _json(tmp_path, "monitor", "titanic", "--since", "1h")
    assert result["source"] == "log" and result["rows"] == len(old)
    assert result["dataset_drift"] is True and any(f["name"] == "age" and f["drifted"] for f in result["features"])
    proba = np.asarray([r["1"] for r in answer.json()["probabilities"]])
    assert result["live"]["rows"] == len(old)
    assert result["live"]["value"] == pytest.approx(roc_auc_score(old["survived"], proba), abs=1e-9)

    predicted = automl_in(tmp_path, "predict", "titanic", "--input", "old_rows.csv")
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.splitlines()
    assert lines[0] == "row_id,prediction" and lines[1].startswith(f"{old['passenger_id'][0]},")
    assert "row ids from column 'passenger_id'" in predicted.stderr and "ignored columns" not in predicted.stderr
    assert _json(tmp_path, "monitor", "titanic", "--since", "1h", "--max-rows", "10")["rows"] == 10

    retrained = automl_in(tmp_path, "retrain", "titanic", "--data", "everyone.csv", "--trials", "5", "--quiet")
    assert retrained.returncode == 0, retrained.stderr
    assert "warm-started from job 1" in retrained.stdout
    versions = _json(tmp_path, "models", "versions", "titanic")
    assert sorted(v["version"] for v in versions) == [1, 2]
    from automl.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    job = store.get_job(2)
    assert job.summary["warm_start"]["job_id"] == 1
    first = store.list_runs(2)[0]
    assert (first.family, first.params) == (
        job.summary["warm_start"]["configurations"][0]["family"],
        job.summary["warm_start"]["configurations"][0]["params"],
    )
    decision = job.summary["promotion"]
    assert decision["policy"] == "if_better" and decision["decision"]
    events = store.list_alias_events("titanic", "production")
    assert (events[-1].to_version_id == store.version_for_job(2).id) == decision["promoted"]
    store.close()

    steady = automl_in(tmp_path, "monitor", "titanic", "--since", "nonsense")
    assert steady.returncode == 2 and "cannot read the window" in steady.stderr
