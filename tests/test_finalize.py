"""Finalizing: a model on time even when the chosen one cannot be refit, a summary that says why,
and calibrated probabilities."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import log_loss
from threadpoolctl import threadpool_limits

from automl.artifacts import ArtifactStore
from automl.context import load_context, load_model
from automl.store import open_store
from tests.engine_helpers import run_one_family_on_titanic, run_spec, write_spec

pytestmark = pytest.mark.slow  # whole jobs, worker or server processes: left out by `make test-fast`


def test_a_refit_that_cannot_finish_in_time_still_registers_a_model_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automl import finalize

    real_refit = finalize.refit

    def slow_refit(channel: Any, data: Any, family: str, *args: Any) -> Any:
        if family != "knn":  # injected: every refit but the neighbours model's runs past the wall
            time.sleep(600)
        return real_refit(channel, data, family, *args)

    monkeypatch.setattr(finalize, "refit", slow_refit)  # the refit's forked child inherits it
    spec = write_spec(
        tmp_path,
        "titanic.csv",
        dataset={"target": "survived", "drop": ["alive"]},
        task="classification",
        budget={"time_s": 20},
        candidates={"include": ["knn", "lightgbm", "random_forest"]},
        cv={"folds": 3},
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    started = time.monotonic()
    job = run_spec(store, ArtifactStore(tmp_path / "art"), url, spec)
    elapsed = time.monotonic() - started
    assert job.status == "succeeded", job.error_message
    summary = job.summary or {}
    trials = [r for r in store.list_runs(job.id) if r.kind == "trial" and r.status == "succeeded"]
    best = max(trials, key=lambda r: r.cv_score or 0.0)
    assert best.family != "knn", "the test needs a best trial that is not the neighbours model"
    # The summary names the real best trial, and why the final model is another one.
    assert summary["best"]["run_id"] == best.id
    assert summary["final"] == "single" and summary["model"]["family"] == "knn"
    assert "did not finish in the time left" in summary["final_reason"]
    version = store.version_for_job(job.id)
    assert version is not None and version.run_id == summary["model"]["run_id"]
    assert summary["timing"]["elapsed_s"] <= 20 * 1.05 + 1.0
    assert elapsed < 60  # loose: submit and start-up included


def test_calibrated_probabilities_stay_inside_0_1_and_do_not_hurt_held_out_log_loss(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "penguins.csv",
        dataset={"target": "species"},
        task="classification",
        metric="log_loss",
        budget={"time_s": None, "trials": 6},
        candidates={"include": ["random_forest", "extra_trees"]},
        cv={"folds": 3},
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    arts = ArtifactStore(tmp_path / "art")
    job = run_spec(store, arts, url, spec)
    assert job.status == "succeeded"
    calibration = (job.summary or {})["calibration"]
    assert calibration["method"] == "temperature" and calibration["temperature"] != 1.0
    version = store.version_for_job(job.id)
    assert version is not None and version.evaluation_uri is not None
    # The fit that never saw the holdout (the registered one was refit on every row).
    model = arts.get_object(version.evaluation_uri, version.evaluation_sha256 or "")
    data = load_context(store, arts, job.id).data
    calibrated = model.predict_proba(data.X_holdout)
    assert np.all(calibrated > 0.0) and np.all(calibrated < 1.0)
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    assert model.temperature == pytest.approx(calibration["temperature"])
    model.temperature = None  # the same fitted model, uncalibrated
    raw = model.predict_proba(data.X_holdout)
    assert np.array_equal(raw.argmax(axis=1), calibrated.argmax(axis=1))  # the ranking is unchanged
    labels = list(range(len(data.classes)))
    assert log_loss(data.y_holdout, calibrated, labels=labels) <= log_loss(data.y_holdout, raw, labels=labels)
    # The version's holdout score is the calibrated model's.
    assert version.holdout_score == pytest.approx(log_loss(data.y_holdout, calibrated, labels=labels), rel=1e-6)


def test_holdout_scheme_registers_the_trials_own_fits_when_no_refit_fits_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automl import finalize, tuning

    def no_refit(*args: Any) -> Any:  # injected: no refit finishes before the wall
        time.sleep(600)

    monkeypatch.setattr(finalize, "refit", no_refit)
    monkeypatch.setattr(finalize, "fit_all_rows", no_refit)
    seen: list[Any] = []  # the trials the finalizing reserve was priced from, as tuning passed them
    reserve = tuning.reserve_seconds

    def watched_reserve(*args: Any, **kwargs: Any) -> float:
        seen.extend(args[4] if len(args) > 4 else kwargs.get("scored") or [])
        return reserve(*args, **kwargs)

    monkeypatch.setattr(tuning, "reserve_seconds", watched_reserve)
    spec = write_spec(
        tmp_path,
        "titanic.csv",
        dataset={"target": "survived", "drop": ["alive"]},
        task="classification",
        budget={"time_s": 15},
        candidates={"include": ["linear", "lightgbm"]},
        cv={"scheme": "holdout"},
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    arts = ArtifactStore(tmp_path / "art")
    job = run_spec(store, arts, url, spec)
    assert job.status == "succeeded", job.error_message
    summary = job.summary or {}
    assert summary["validation"]["scheme"] == "holdout"
    trials = [r for r in store.list_runs(job.id) if r.kind == "trial" and r.status == "succeeded"]
    assert trials and all(r.model_uri and r.model_sha256 for r in trials)
    # Each trial measured what predicting its validation rows took, which prices its kept fit.
    assert all(r.predict_seconds_per_row is not None and 0.0 < r.predict_seconds_per_row < 0.01 for r in trials)
    # The reserve read it for every trial: the job's from the store and this process's own since.
    assert seen and all(entry.predict_s_per_row is not None for entry in seen)
    members = summary["model"]["members"]
    assert members and all(m["trained_on"] == "the trial's training split" for m in members)
    assert "trial's training split (no time left to refit on all" in summary["trained_on"]
    version = store.version_for_job(job.id)
    assert version is not None
    data = load_context(store, arts, job.id).data
    proba = load_model(store, arts, version.id).predict_proba(data.X_holdout)
    assert proba.shape == (len(data.X_holdout), 2)
    assert version.holdout_score == pytest.approx(float(data.metric.score(data.y_holdout, proba)), rel=1e-6)


def test_the_registered_model_learns_from_every_row_and_the_holdout_score_from_a_fit_that_did_not(
    tmp_path: Path,
) -> None:
    # A fitted kNN knows how many rows it learned from.
    store, arts, job, data, version = run_one_family_on_titanic(tmp_path, "knn", trials=3)
    final = load_model(store, arts, version.id)
    evaluation = arts.get_object(version.evaluation_uri, version.evaluation_sha256 or "")

    def rows_learned(model: Any) -> int:
        return int(model.estimator_.named_steps["model"].n_samples_fit_)

    assert rows_learned(final) == len(data.y) + len(data.y_holdout)
    assert rows_learned(evaluation) == len(data.y)
    with threadpool_limits(1):  # as the job predicted (n_jobs 1): kNN's distance ties follow BLAS rounding
        honest = float(data.metric.score(data.y_holdout, evaluation.predict_proba(data.X_holdout)))
    assert version.holdout_score == pytest.approx(honest, rel=1e-9)
    summary = job.summary or {}
    assert summary["trained_on"].startswith(f"every row: {len(data.y) + len(data.y_holdout):,}")
    assert summary["holdout_split"]["rule"] == "row-hash"


def test_the_probability_floor_shrinks_with_the_class_count() -> None:
    """A mistake spreads over the k - 1 other classes: the floor minimising the expected log loss at
    the mistake rate the rows allow is that rate over k - 1, and it never reaches 0."""
    from automl.calibration import PROBABILITY_FLOOR, evidence_floor, scale

    assert evidence_floor(99, 2) == pytest.approx(0.005)
    assert evidence_floor(99, 10) == pytest.approx(0.005 / 9)
    assert evidence_floor(10**9, 10) == PROBABILITY_FLOOR
    rate = 0.005  # the mistake rate the floor stands for
    for k in (2, 3, 10):

        def expected(f: float, k: int = k) -> float:
            return -(1 - rate) * np.log(1 - (k - 1) * f) - rate * np.log(f)

        chosen = evidence_floor(99, k)
        assert expected(chosen) <= min(expected(chosen * 2), expected(chosen / 2))
    sure = np.eye(10)[[0, 3, 9]]
    floored = scale(sure, 1.0, evidence_floor(99, 10))
    assert np.all(floored > 0) and np.all(floored < 1)
    assert np.allclose(floored.sum(axis=1), 1.0)
