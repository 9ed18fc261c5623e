"""`automl monitor` end to end on a real data set split by age: the reference stored at
registration, drift of the shifted features, anomalies, the live metric, the stored run and the
``model_health`` view, on SQLite and PostgreSQL; the CLI's JSON, HTML report and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import DATA, backend_url
from tests.engine_helpers import automl_in, run_spec

pytestmark = pytest.mark.slow


def _split_titanic(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference: passengers under 30; current: passengers of 40 and over."""
    frame = pd.read_csv(DATA / "titanic.csv")
    young, old = frame[frame.age < 30], frame[frame.age >= 40].reset_index(drop=True)
    young.to_csv(folder / "young.csv", index=False)
    old.to_csv(folder / "old.csv", index=False)
    return young, old


def _spec(folder: Path) -> Path:
    spec = {
        "spec_version": 1, "name": "titanic-young", "seed": 0, "n_jobs": 1,
        "dataset": {"path": "young.csv", "target": "survived", "drop": ["alive"]},
        "task": "classification", "metric": "roc_auc",
        "budget": {"time_s": 60, "trials": 4}, "cv": {"folds": 3},
        "candidates": {"include": ["linear", "hist_gradient_boosting"]},
        "register": {"model_name": "titanic", "promote": "always"},
    }  # fmt: skip
    path = folder / "spec.json"
    path.write_text(json.dumps(spec))
    return path


@dataclass
class Monitored:
    url: str
    store: Any
    artifacts: Any
    job: Any
    version: Any
    young: pd.DataFrame
    old: pd.DataFrame


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def monitored(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    """One registered titanic model per backend, shared by the tests below (none of them stores a
    model or changes the version; only the first stores a monitoring run)."""
    from automl.artifacts import ArtifactStore
    from automl.store import open_store

    folder = tmp_path_factory.mktemp(f"monitor-{request.param}")
    with backend_url(request, folder) as url:
        store = open_store(url, auto_upgrade=True)
        artifacts = ArtifactStore(folder / "artifacts")
        young, old = _split_titanic(folder)
        job = run_spec(store, artifacts, url, _spec(folder))
        assert job.status == "succeeded", job.error_message
        yield Monitored(url, store, artifacts, job, store.version_for_job(job.id), young, old)
        store.close()


def test_monitor_flags_the_shifted_population_and_stores_the_run(monitored: Monitored) -> None:
    from automl.monitoring.monitor import monitor_frame

    store, artifacts, db_url = monitored.store, monitored.artifacts, monitored.url
    version, old = monitored.version, monitored.old
    assert monitored.job.summary["monitor_reference"] == "stored"
    reference = store.get_reference(version.id)
    assert set(reference.reference["features"]) == {c["name"] for c in version.input_schema}

    result = monitor_frame(
        store, artifacts, version, old, source="input", source_detail="old.csv", actor="test", labels=old["survived"]
    )
    drifted = {f.name for f in result.drifted}
    assert "age" in drifted and result.dataset_drift
    assert result.prediction is not None
    # Every passenger is older than any in training: each row has an out-of-range age.
    age = next(a for a in result.anomalies if a["feature"] == "age" and a["type"] == "out_of_range")
    assert age["count"] == len(old) and result.anomaly_rows == len(old)
    # The live metric is the version's metric computed on the labelled rows, by hand.
    from sklearn.metrics import roc_auc_score

    from automl.predict import load_version
    from automl.sandbox import openmp_single_threaded

    with openmp_single_threaded():  # this process forks trial children after it (the next backend's job)
        model = load_version(artifacts, version)
        expected = roc_auc_score(old["survived"], model.predict_proba(old)[:, list(model.classes_).index(1)])
    assert result.live is not None and result.live["rows"] == len(old)
    assert result.live["value"] == pytest.approx(expected, abs=1e-12)

    run = result.run
    assert run is not None and run.dataset_drift and run.live_value == pytest.approx(expected)
    features = store.monitor_features(run.id)
    assert {f.feature for f in features if f.drifted} == drifted
    health = store.model_health("titanic")
    assert [(h.monitor_run_id, h.in_production, h.dataset_drift, h.version) for h in health] == [
        (run.id, True, True, 1)
    ]
    # The view answers the operators' question in plain SQL on either backend.
    engine = create_engine(db_url)
    with engine.connect() as conn:
        names = (
            conn.execute(text("SELECT DISTINCT model_name FROM model_health WHERE in_production = 1 AND dataset_drift"))
            .scalars()
            .all()
        )
    engine.dispose()
    assert names == ["titanic"]


def test_the_reference_population_itself_does_not_drift(monitored: Monitored) -> None:
    from automl.monitoring.monitor import monitor_frame

    result = monitor_frame(
        monitored.store, monitored.artifacts, monitored.version, monitored.young, source="input",
        source_detail=None, actor="test", save=False,
    )  # fmt: skip
    assert not result.dataset_drift
    assert len(result.drifted) <= 1  # 13 tests at the 5 % level
    assert result.outliers is not None and result.outliers["rate"] < 0.05


def test_a_version_without_a_reference_gets_one_computed_from_its_job(monitored: Monitored) -> None:
    from automl.monitoring.monitor import ensure_reference

    store, version = monitored.store, monitored.version
    stored = store.get_reference(version.id).reference
    engine = create_engine(monitored.url)
    with engine.begin() as conn:  # as if the version had been registered before references existed
        conn.execute(text("DELETE FROM version_references"))
    engine.dispose()
    assert store.get_reference(version.id) is None
    recomputed = ensure_reference(store, monitored.artifacts, version).reference
    assert recomputed["features"] == stored["features"]
    ref_pred, new_pred = stored["prediction"], recomputed["prediction"]
    assert ref_pred["frequencies"].keys() == new_pred["frequencies"].keys()
    assert store.get_reference(version.id) is not None


def test_cli_monitor_json_report_and_exit_codes(tmp_path: Path) -> None:
    _split_titanic(tmp_path)
    ran = automl_in(tmp_path, "run", str(_spec(tmp_path)))
    assert ran.returncode == 0, ran.stderr

    drifting = automl_in(
        tmp_path, "monitor", "titanic", "--input", "old.csv", "--format", "json",
        "--report", "drift.html", "--fail-on-drift",
    )  # fmt: skip
    assert drifting.returncode == 4, drifting.stderr
    result = json.loads(drifting.stdout)
    assert result["dataset_drift"] is True
    assert {"name", "method", "statistic", "threshold", "drifted"} <= set(result["features"][0])
    age = next(f for f in result["features"] if f["name"] == "age")
    assert age["drifted"] and age["method"] == "ks" and age["statistic"] < age["threshold"]
    assert result["live"]["metric"] == "roc_auc" and result["live"]["rows"] == result["rows"]
    html = (tmp_path / "drift.html").read_text()
    assert html.count('<img src="data:image/png;base64,') == len(result["features"]) + 1  # + predictions
    assert "The data set drifted" in html

    retrained = automl_in(tmp_path, "monitor", "titanic", "--input", "old.csv", "--retrain", "--fail-on-drift")
    assert retrained.returncode == 4, retrained.stderr
    assert "the data set drifted: retraining titanic on old.csv" in retrained.stdout
    assert "registered titanic version 2" in retrained.stdout

    steady = automl_in(tmp_path, "monitor", "titanic:1", "--input", "young.csv", "--fail-on-drift")
    assert steady.returncode == 0, steady.stderr
    assert "no data set drift" in steady.stdout

    health = automl_in(tmp_path, "models", "health", "titanic", "--format", "json")
    rows = json.loads(health.stdout)
    assert [r["dataset_drift"] for r in rows] == [False, True, True]

    missing = tmp_path / "narrow.csv"
    pd.DataFrame({"age": [30.0]}).to_csv(missing, index=False)
    refused = automl_in(tmp_path, "monitor", "titanic", "--input", str(missing))
    assert refused.returncode == 2 and "input column" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(json.loads(automl_in(tmp_path, "models", "health", "-f", "json").stdout)) == 3  # nothing stored


def test_monitor_spec_block_sets_the_tests(monitored: Monitored) -> None:
    """The job spec's `monitor` block is read: PSI chosen for every feature, a stricter share."""
    from automl.monitoring.drift import DriftOptions
    from automl.monitoring.monitor import monitor_frame, options_from_spec

    options, share = options_from_spec(
        {"monitor": {"numeric_test": "psi", "categorical_test": "psi", "drift_share": 0.9}}
    )
    assert options == DriftOptions("psi", "psi", None) and share == 0.9
    result = monitor_frame(
        monitored.store, monitored.artifacts, monitored.version, monitored.old, source="input",
        source_detail=None, actor="test", options=options, drift_share=share, save=False,
    )  # fmt: skip
    assert {f.method for f in result.features} == {"psi"}
    assert all(f.statistic == f.psi for f in result.features)
    assert np.isclose(result.drift_share, 0.9) and result.run is None
