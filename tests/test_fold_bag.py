"""A member's final model averages its refit with the models its trial's K folds fitted: the folds
are kept by the trial (K-fold CV, tree families), are the very models that made the out-of-fold
predictions, and the holdout score is still earned by models that never saw the holdout."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier, DummyRegressor

from automl import training
from automl.artifacts import ArtifactStore
from automl.context import load_model
from automl.model import FoldBag, predict_matrix
from automl.preprocessing import plan_features
from automl.profile import profile_frame, with_target
from automl.training import JobData, prepare_data
from tests.engine_helpers import run_one_family_on_titanic


class _GoOn:
    """The parent's end of a trial, in process: every check says go on."""

    def ask(self, message: Any) -> str:
        return "go"


def _data(rows: int = 300, scheme: str = "cv") -> JobData:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["x0", "x1", "x2"])
    frame["y"] = (frame["x0"] + rng.normal(scale=0.7, size=rows) > 0).astype(int)
    profile = with_target(profile_frame(frame), frame, "y", "binary")
    plan = plan_features(profile, "y", [], [], None)
    return prepare_data(
        frame, target="y", task="binary", metric="roc_auc", plan=plan, profile=profile,
        holdout_fraction=0.2, folds=4, seed=0, n_jobs=1, scheme=scheme,
    )  # fmt: skip


def test_a_tree_trial_under_k_fold_keeps_the_models_that_made_its_out_of_fold_predictions() -> None:
    data = _data()
    result = training.cross_validate(_GoOn(), data, "hist_gradient_boosting", {"max_iter": 20})
    folds = joblib.load(io.BytesIO(result["folds_bytes"]))
    assert len(folds) == len(data.folds) == 4
    for model, (_train, valid) in zip(folds, data.folds, strict=True):
        predicted = predict_matrix(model, data.X.iloc[valid], data.task, data.n_classes)
        np.testing.assert_allclose(predicted, result["oof"][valid])
    # A linear model keeps none (averaging gains it nothing), nor does a trial on one split.
    assert "folds_bytes" not in training.cross_validate(_GoOn(), data, "linear", {"C": 1.0})
    one_split = _data(scheme="holdout")
    assert one_split.validation.scheme == "holdout"
    kept = training.cross_validate(_GoOn(), one_split, "hist_gradient_boosting", {"max_iter": 20})
    assert "folds_bytes" not in kept


def test_a_trial_keeps_no_fold_models_when_k_of_them_would_pass_the_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data()
    forest = {"n_estimators": 20, "max_features": "sqrt", "min_samples_leaf": 1, "max_depth": 0}
    kept = training.cross_validate(_GoOn(), data, "random_forest", forest)
    folds = joblib.load(io.BytesIO(kept["folds_bytes"]))
    assert len(folds) == 4
    # A limit between one fold's model and four of them: the forest keeps none, with the same scores.
    one_fold_mb = len(training.object_bytes(folds[0])) / 1e6
    monkeypatch.setattr(training, "FOLD_MODELS_MAX_MB", 2 * one_fold_mb)
    dropped = training.cross_validate(_GoOn(), data, "random_forest", forest)
    assert "folds_bytes" not in dropped
    np.testing.assert_allclose(dropped["oof"], kept["oof"])
    assert dropped["fold_scores"] == kept["fold_scores"]
    # A booster's fold models are far smaller than the forest's: it keeps them under the same limit.
    boosted = training.cross_validate(_GoOn(), data, "hist_gradient_boosting", {"max_iter": 20})
    assert len(joblib.load(io.BytesIO(boosted["folds_bytes"]))) == 4


def test_the_bag_gives_half_to_the_refit_and_half_to_the_folds_mean_even_when_a_fold_missed_a_class() -> None:
    X = np.zeros((6, 1))
    full = DummyClassifier(strategy="prior").fit(X, [0, 0, 1, 1, 2, 2])  # 1/3 each
    fold_a = DummyClassifier(strategy="prior").fit(X[:4], [0, 0, 0, 1])  # never saw class 2
    fold_b = DummyClassifier(strategy="prior").fit(X[:4], [1, 2, 2, 2])  # never saw class 0
    bag = FoldBag(full, [fold_a, fold_b], n_classes=3)
    expected = 0.5 * np.array([1 / 3, 1 / 3, 1 / 3]) + 0.5 * np.array([(0.75 + 0) / 2, (0.25 + 0.25) / 2, 0.75 / 2])
    np.testing.assert_allclose(bag.predict_proba(X[:2]), np.tile(expected, (2, 1)))
    assert bag.predict(X[:1]).tolist() == [int(np.argmax(expected))]
    assert bag.classes_.tolist() == [0, 1, 2]

    regression = FoldBag(
        DummyRegressor(strategy="constant", constant=10.0).fit(X, np.zeros(6)),
        [DummyRegressor(strategy="constant", constant=c).fit(X, np.zeros(6)) for c in (2.0, 4.0)],
    )
    np.testing.assert_allclose(regression.predict(X[:3]), [0.5 * 10.0 + 0.5 * 3.0] * 3)


def test_a_refit_leaves_the_folds_out_when_loading_them_might_pass_its_deadline(tmp_path: Path) -> None:
    data = _data()
    result = training.cross_validate(_GoOn(), data, "hist_gradient_boosting", {"max_iter": 20})
    arts = ArtifactStore(tmp_path)
    folds = (
        "jobs/1/trials/trial-0.folds.joblib",
        arts.put_bytes("jobs/1/trials/trial-0.folds.joblib", result["folds_bytes"]),
    )
    model = training.build(data, "hist_gradient_boosting", {"max_iter": 20}).fit(data.X, data.y)
    assert (
        training.with_fold_models(model, data, "hist_gradient_boosting", str(tmp_path), folds, time.monotonic())
        is model
    )
    assert training.with_fold_models(model, data, "hist_gradient_boosting", str(tmp_path), None, None) is model
    bagged = training.with_fold_models(
        model, data, "hist_gradient_boosting", str(tmp_path), folds, time.monotonic() + 60
    )
    assert isinstance(bagged, FoldBag) and bagged.full is model and len(bagged.folds) == 4


def test_a_refit_leaves_the_folds_out_when_their_load_shows_the_rest_would_pass_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small models of many trees cost more per MB than their size says: the load's own time decides."""
    data = _data()
    result = training.cross_validate(_GoOn(), data, "hist_gradient_boosting", {"max_iter": 20})
    arts = ArtifactStore(tmp_path)
    key = "jobs/1/trials/trial-0.folds.joblib"
    folds = (key, arts.put_bytes(key, result["folds_bytes"]))
    model = training.build(data, "hist_gradient_boosting", {"max_iter": 20}).fit(data.X, data.y)
    load = ArtifactStore.get_object

    def slow_load(self: ArtifactStore, key: str, sha256: str) -> Any:
        time.sleep(0.4)  # as a load of thousands of small trees takes
        return load(self, key, sha256)

    monkeypatch.setattr(ArtifactStore, "get_object", slow_load)
    # The size alone leaves room (a few hundred kB), but after a 0.4 s load, 2.5 s are not enough.
    room = time.monotonic() + 2.5
    assert training.with_fold_models(model, data, "hist_gradient_boosting", str(tmp_path), folds, room) is model
    bagged = training.with_fold_models(
        model, data, "hist_gradient_boosting", str(tmp_path), folds, time.monotonic() + 30
    )
    assert isinstance(bagged, FoldBag) and len(bagged.folds) == 4


@pytest.mark.slow
def test_the_registered_member_averages_its_trials_folds_and_its_holdout_score_is_honest(tmp_path: Path) -> None:
    store, arts, job, data, version = run_one_family_on_titanic(tmp_path, "hist_gradient_boosting", trials=2)
    summary = job.summary or {}
    member = summary["model"]["members"][0]
    run = store.get_run(member["run_id"])
    assert run.folds_uri and run.folds_sha256
    trial_folds = arts.get_object(run.folds_uri, run.folds_sha256)

    final = load_model(store, arts, version.id).estimator_
    evaluation = arts.get_object(version.evaluation_uri, version.evaluation_sha256 or "")
    for model in (final, evaluation.estimator_):
        assert isinstance(model, FoldBag) and len(model.folds) == 3
        for kept, original in zip(model.folds, trial_folds, strict=True):  # the trial's own fold models
            np.testing.assert_allclose(kept.predict_proba(data.X_holdout), original.predict_proba(data.X_holdout))
    # The holdout score is the evaluation bag's: its refit and its folds never saw the holdout.
    honest = float(data.metric.score(data.y_holdout, evaluation.predict_proba(data.X_holdout)))
    assert version.holdout_score == pytest.approx(honest, rel=1e-9)
    assert member["fold_models"] == 3
    assert "also averages the 3 models of their trial's cross-validation folds" in summary["trained_on"]
