"""LightGBM, CatBoost and XGBoost: scikit-learn conformance, early stopping, the time cap, native
categoricals (LightGBM, CatBoost) with missing and unseen values."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from automl.candidates import boosting, build_estimator
from automl.candidates.boosting import REFIT_MAX_ROWS, REFIT_ROUNDS_FACTOR, ROUNDS_CV_FOLDS, ROUNDS_CV_MAX_ROWS
from automl.candidates.catboost import CatBoostClassifier, CatBoostRegressor
from automl.candidates.lightgbm import LightGBMClassifier, LightGBMRegressor
from automl.candidates.xgboost import XGBoostClassifier, XGBoostRegressor
from automl.model import predict_matrix
from automl.preprocessing import plan_features
from automl.profile import profile_frame, with_target
from tests.conftest import SHARED_DATASETS, record_fit_rounds

SMALL = {"n_estimators": 30}


@parametrize_with_checks(  # type: ignore[untyped-decorator]
    [
        LightGBMClassifier(params=SMALL),
        LightGBMRegressor(params=SMALL),
        CatBoostClassifier(params=SMALL),
        CatBoostRegressor(params=SMALL),
        XGBoostClassifier(params=SMALL),
        XGBoostRegressor(params=SMALL),
    ]
)
def test_boosters_conform_to_scikit_learn(estimator: Any, check: Any) -> None:
    check(estimator)


def _xy(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.8, size=rows) > 0).astype(int)
    return X, y


@pytest.mark.parametrize("cls", [LightGBMClassifier, CatBoostClassifier, XGBoostClassifier])
def test_early_stopping_keeps_fewer_rounds_than_the_cap(cls: Any) -> None:
    X, y = _xy(2_000)
    model = cls(params={"n_estimators": 3000, "learning_rate": 0.3}, n_jobs=1).fit(X, y)
    # Noisy labels and a high learning rate: the inner split stops boosting long before the cap.
    assert 1 <= model.n_rounds_ < 1000
    proba = model.predict_proba(X[:10])
    assert proba.shape == (10, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert len(X) <= REFIT_MAX_ROWS  # so the kept rounds were refit on every row


def _task_xy(cls: Any, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows for ``cls``: noisy binary labels for a classifier, a noisy value for a regressor."""
    X, y = _xy(rows)
    if not cls._is_classifier:
        y = X[:, 0] + np.random.default_rng(1).normal(scale=0.8, size=len(y))
    return X, y


@pytest.mark.parametrize("cls", [LightGBMClassifier, CatBoostRegressor, XGBoostClassifier])
def test_on_few_rows_the_round_count_is_cross_validated_then_refit_on_every_row(
    cls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = _task_xy(cls, 400)
    calls = record_fit_rounds(cls, monkeypatch)
    model = cls(params={"n_estimators": 2000, "learning_rate": 0.3}, n_jobs=1).fit(X, y)
    *folds, final = calls
    # Early stopping on each fold: every row is validated once, on a fold that did not train on it.
    assert len(folds) == ROUNDS_CV_FOLDS and len(X) < ROUNDS_CV_MAX_ROWS
    assert all(train + valid == len(X) for train, valid, _, _ in folds)
    assert sum(valid for _, valid, _, _ in folds) == len(X)
    # Then one fit on every row, no validation rows, with the folds' mean best round (noisy labels
    # and a high learning rate: far below the cap).
    mean = np.mean([kept for *_, kept in folds])
    assert final[:3] == (len(X), None, round(mean * REFIT_ROUNDS_FACTOR))
    assert model.n_rounds_ == final[3] < 200


@pytest.mark.parametrize("cls", [LightGBMRegressor, CatBoostClassifier, XGBoostRegressor])
def test_a_final_fit_refits_the_early_stopped_rounds_on_every_row_at_any_size(
    cls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = _task_xy(cls, 2_000)
    monkeypatch.setattr(boosting, "REFIT_MAX_ROWS", 1_000)  # 2,000 rows count as large
    calls = record_fit_rounds(cls, monkeypatch)
    params = {"n_estimators": 2000, "learning_rate": 0.3}
    trial = cls(params=params, n_jobs=1).fit(X, y)
    # A trial's fit on large data keeps its early-stopped model, trained on the inner split's rest.
    assert [(rows, valid) for rows, valid, _, _ in calls] == [(1_700, 300)]
    assert trial.n_rounds_ == calls[0][3]
    calls.clear()
    final = cls(params=params, n_jobs=1, refit_all=True).fit(X, y)
    # A final fit refits the rounds it found on every row, with none held out.
    (rows, valid, _, kept), refit = calls
    assert (rows, valid) == (1_700, 300)
    assert refit[:3] == (len(X), None, round(kept * REFIT_ROUNDS_FACTOR))
    assert final.n_rounds_ == refit[3]


@pytest.mark.parametrize("cls", [LightGBMClassifier, CatBoostClassifier, XGBoostClassifier])
def test_a_refit_that_would_pass_the_time_cap_is_not_started(cls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _xy(2_000)
    real = cls._fit_rounds

    def slow_early_stopping(self: Any, X: Any, y: Any, valid: Any, rounds: int, deadline: Any) -> Any:
        if valid is not None:
            time.sleep(1.0)  # the early-stopped fit takes at least a second
        return real(self, X, y, valid, rounds, deadline)

    monkeypatch.setattr(cls, "_fit_rounds", slow_early_stopping)
    calls = record_fit_rounds(cls, monkeypatch)
    # Too few rounds to stop early: the refit would boost as many, on 1/0.85 the rows, so it is
    # expected to take about a second more; with 1.3 s in all it would be cut short, so it is skipped.
    params = {"n_estimators": 20, "learning_rate": 0.01}
    cls(params=params, n_jobs=1, max_time_s=1.3, refit_all=True).fit(X, y)
    assert [valid for _, valid, _, _ in calls] == [300]
    calls.clear()
    model = cls(params=params, n_jobs=1, max_time_s=60.0, refit_all=True).fit(X, y)
    assert [valid for _, valid, _, _ in calls] == [300, None]  # with time for it, the refit runs
    assert calls[1][2] == min(20, round(calls[0][3] * REFIT_ROUNDS_FACTOR)) == model.n_rounds_


def test_a_class_rarer_than_the_folds_still_trains_every_fold_on_every_class(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _xy(300)
    y[:3] = 2  # a third class of three rows: three stratified folds, each training on all three classes
    calls = record_fit_rounds(XGBoostClassifier, monkeypatch)
    model = XGBoostClassifier(params={"n_estimators": 500, "learning_rate": 0.3}, n_jobs=1).fit(X, y)
    assert [valid is None for _, valid, _, _ in calls] == [False, False, False, True]
    assert model.predict_proba(X[:3]).shape == (3, 3)
    y[:3] = [2, 3, 3]  # a class of one row: no fold can train on it and validate without it
    calls.clear()
    model = XGBoostClassifier(params={"n_estimators": 500, "learning_rate": 0.3}, n_jobs=1).fit(X, y)
    assert 1 <= len(calls) - 1 < ROUNDS_CV_FOLDS  # the fold that holds the single row out is skipped
    assert model.predict_proba(X[:3]).shape == (3, 4)


@pytest.mark.parametrize("cls", [LightGBMClassifier, CatBoostClassifier, XGBoostClassifier])
def test_under_a_time_cap_the_folds_leave_time_for_the_fit_on_every_row(cls: Any) -> None:
    X, y = _xy(600)
    # Rounds too slow to stop early within the cap: the folds run out of their share of it.
    # A 2 s cap leaves the fit on every row 0.4 s, hundreds of rounds here: under a 1 s cap, a busy
    # machine's pause of 0.2 s at its start once left it fewer than 6.
    params = {"n_estimators": 1_000_000, "learning_rate": 0.001}
    started = time.monotonic()
    model = cls(params=params, n_jobs=1, max_time_s=2.0).fit(X, y)
    assert time.monotonic() - started < 20  # loose: stopped by the cap
    # The fit on every row still had time to boost: a model, not a single round of one.
    assert model.n_rounds_ > 5
    proba = model.predict_proba(X)
    assert roc_auc_score(y, proba[:, 1]) > 0.75


def test_lightgbm_extra_trees_draws_random_thresholds_only_when_asked() -> None:
    X, y = _xy(600)
    params = {"n_estimators": 40, "learning_rate": 0.1}
    plain = LightGBMClassifier(params=params, n_jobs=1).fit(X, y)
    extra = LightGBMClassifier(params={**params, "extra_trees": True}, n_jobs=1).fit(X, y)
    # The booster itself was told, and its splits differ: random thresholds, not the best ones.
    assert extra.model_.booster_.params["extra_trees"] is True
    assert plain.model_.booster_.params["extra_trees"] is False
    assert not np.allclose(plain.predict_proba(X), extra.predict_proba(X))

    # Extremely randomised trees fit the training rows less closely than greedy ones.
    def fit_loss(model: Any) -> float:
        return float(-np.mean(np.log(model.predict_proba(X)[np.arange(len(y)), y])))

    assert fit_loss(extra) > fit_loss(plain)


@pytest.mark.parametrize("cls", [LightGBMRegressor, CatBoostRegressor, XGBoostRegressor])
def test_the_time_cap_stops_boosting_and_keeps_a_model(cls: Any) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 20))
    y = X @ rng.normal(size=20) + rng.normal(size=20_000)
    params = {"n_estimators": 100_000, "learning_rate": 0.001}
    started = time.monotonic()
    model = cls(params=params, n_jobs=1, max_time_s=1.0).fit(X, y)
    elapsed = time.monotonic() - started
    assert model.n_rounds_ < 100_000
    assert elapsed < 30  # loose: stopped by the cap, not by the rounds
    assert np.isfinite(model.predict(X[:5])).all()


TASKS = {
    "binary": ("titanic", "survived", ["alive"]),
    "multiclass": ("penguins", "species", []),
    "regression": ("mpg", "mpg", []),
}


@pytest.mark.parametrize("family", ["lightgbm", "catboost", "xgboost"])
@pytest.mark.parametrize("task", list(TASKS))
def test_raw_rows_with_missing_values_and_unseen_categories(family: str, task: str) -> None:
    name, target, drop = TASKS[task]
    frame = pd.read_csv(SHARED_DATASETS / f"{name}.csv").drop(columns=drop)
    frame = frame[frame[target].notna()].reset_index(drop=True)
    profile = with_target(profile_frame(frame), frame, target, task)
    plan = plan_features(profile, target, [], list(profile.leaks), None)
    categorical = plan.columns("categorical")
    assert categorical, "each data set has a categorical feature"
    model = build_estimator(family, {"n_estimators": 200}, task, 0, 1, plan, profile)
    if family != "xgboost":  # XGBoost reads ordinal codes; the others their native categoricals
        assert any(model.named_steps["model"].categorical_features or [])
    X = frame.drop(columns=[target])
    y = frame[target].to_numpy()
    if task != "regression":
        y = np.unique(y.astype(str), return_inverse=True)[1]
    model.fit(X, y)
    rows = X.head(6).astype(object)
    rows.loc[0, categorical[0]] = "never seen before"
    rows.loc[1, :] = np.nan  # every feature missing
    n_classes = len(np.unique(y)) if task != "regression" else 0
    prediction = predict_matrix(model, rows, task, n_classes)
    assert np.isfinite(prediction).all()
    if task != "regression":
        assert prediction.shape == (6, n_classes) and np.allclose(prediction.sum(axis=1), 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["lightgbm", "xgboost"])
def test_trials_after_a_kept_booster_still_run_in_their_forked_processes(family: str, tmp_path: Any) -> None:
    """Under the holdout scheme a trial's fitted model is kept. Were it unpickled in the parent,
    its library's OpenMP threads would start there, and every later forked trial using that library
    would hang until its deadline (a LightGBM trial of 2 s timed out after 13 s on diamonds)."""
    from automl.artifacts import ArtifactStore
    from automl.store import open_store
    from tests.engine_helpers import run_spec, write_spec

    spec = write_spec(
        tmp_path,
        "titanic.csv",
        dataset={"target": "survived", "drop": ["alive"]},
        task="classification",
        budget={"time_s": None, "trials": 4, "trial_time_s": 30},
        candidates={"include": [family]},
        cv={"scheme": "holdout"},
        ensemble={"enabled": False},
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    job = run_spec(store, ArtifactStore(tmp_path / "artifacts"), url, spec)
    assert job.status == "succeeded", (job.error_code, job.error_message)
    runs = [r for r in store.list_runs(job.id) if r.kind == "trial"]
    assert [r.status for r in runs] == ["succeeded"] * 4, [(r.status, r.error_code) for r in runs]
    assert all(r.model_uri for r in runs)  # each trial's fit was kept
