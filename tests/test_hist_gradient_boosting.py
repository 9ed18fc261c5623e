"""Histogram boosting with a time cap: scikit-learn conformance, the same model as scikit-learn's
when the time suffices, and whole iterations kept when the cap stops it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from automl.candidates import build_estimator
from automl.candidates.hist_gradient_boosting import (
    HistGradientBoostingClassifierCapped,
    HistGradientBoostingRegressorCapped,
)
from automl.sandbox import openmp_single_threaded


@pytest.fixture(autouse=True)
def _one_openmp_thread() -> Any:
    """These fits run in the test process, which later tests fork jobs' children from: on one
    OpenMP thread no thread pool is started for a forked child to wait on."""
    with openmp_single_threaded():
        yield


@parametrize_with_checks(  # type: ignore[untyped-decorator]
    [
        HistGradientBoostingClassifierCapped(max_iter=20, random_state=0),
        HistGradientBoostingRegressorCapped(max_iter=20, random_state=0, max_time_s=30.0),
    ]
)
def test_capped_histogram_boosting_conforms_to_scikit_learn(estimator: Any, check: Any) -> None:
    check(estimator)


def _xy(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 8))
    return X, X[:, 0] + X[:, 1] ** 2 + rng.normal(scale=0.3, size=rows)


# 2,000 rows: no early stopping; 20,000: scikit-learn's early stopping ("auto") is on, and the
# capped model must stop where scikit-learn's does.
@pytest.mark.parametrize("rows", [2_000, 20_000])
@pytest.mark.parametrize("max_time_s", [None, 600.0])
def test_with_time_enough_it_is_scikit_learns_model(rows: int, max_time_s: float | None) -> None:
    X, y = _xy(rows)
    ours = HistGradientBoostingRegressorCapped(max_iter=77, learning_rate=0.3, random_state=3, max_time_s=max_time_s)
    theirs = HistGradientBoostingRegressor(max_iter=77, learning_rate=0.3, random_state=3)
    ours.fit(X, y)
    theirs.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X))
    labels = (y > 1).astype(int)
    capped = HistGradientBoostingClassifierCapped(max_iter=33, random_state=1, max_time_s=max_time_s).fit(X, labels)
    plain = HistGradientBoostingClassifier(max_iter=33, random_state=1).fit(X, labels)
    np.testing.assert_allclose(capped.predict_proba(X), plain.predict_proba(X))


def test_the_time_cap_stops_adding_iterations_and_keeps_a_whole_model() -> None:
    X, y = _xy(20_000)
    model = HistGradientBoostingRegressorCapped(max_iter=100_000, early_stopping=False, max_time_s=1.0)
    started = time.monotonic()
    model.fit(X, y)
    elapsed = time.monotonic() - started
    assert 10 <= model.n_iter_ < 100_000
    assert elapsed < 30  # loose: stopped by the cap, not by the iterations
    # The configuration is unchanged (a clone asks for the same model), and it predicts as its
    # iterations sum.
    assert model.get_params()["max_iter"] == 100_000 and clone(model).get_params() == model.get_params()
    assert len(model._predictors) == model.n_iter_
    staged = list(model.staged_predict(X[:50]))
    assert len(staged) == model.n_iter_
    np.testing.assert_allclose(model.predict(X[:50]), staged[-1])
    # Fitted again, it starts over rather than adding to the iterations it has.
    again = model.set_params(max_iter=20, max_time_s=600.0).fit(X[:500], y[:500])
    assert again.n_iter_ == 20


def test_the_family_builds_the_capped_model_and_a_trial_sets_its_cap() -> None:
    import pandas as pd

    from automl.preprocessing import plan_features
    from automl.profile import profile_frame, with_target

    X, y = _xy(300)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)]).assign(y=y)
    profile = with_target(profile_frame(frame), frame, "y", "regression")
    plan = plan_features(profile, "y", [], [], None)
    pipeline = build_estimator("hist_gradient_boosting", {}, "regression", 0, 1, plan, profile)
    model = pipeline.named_steps["model"]
    assert isinstance(model, HistGradientBoostingRegressorCapped)
    assert "max_time_s" in model.get_params()  # what trials and final fits set their cap through


@pytest.mark.parametrize("max_time_s", [None, 60.0])
def test_a_final_fit_refits_its_early_stopped_iterations_on_every_row(max_time_s: float | None) -> None:
    X, y = _xy(3_000)
    params: dict[str, Any] = {"max_iter": 500, "learning_rate": 0.3, "early_stopping": True, "random_state": 0}
    trial = HistGradientBoostingRegressorCapped(**params, max_time_s=max_time_s).fit(X, y)
    assert trial.n_iter_ < 500 and len(trial.validation_score_) > 0  # stopped early on held-out rows
    final = HistGradientBoostingRegressorCapped(**params, max_time_s=max_time_s, refit_all=True).fit(X, y)
    # The same iterations, fitted again with no rows held out (no validation scores kept).
    assert final.n_iter_ == trial.n_iter_ and len(final.validation_score_) == 0
    assert final.get_params() == {**trial.get_params(), "refit_all": True}  # its parameters as they were


def test_a_final_fit_with_no_time_left_keeps_its_early_stopped_model() -> None:
    X, y = _xy(3_000)
    params: dict[str, Any] = {"max_iter": 500, "learning_rate": 0.3, "early_stopping": True, "random_state": 0}
    final = HistGradientBoostingRegressorCapped(**params, max_time_s=1e-6, refit_all=True).fit(X, y)
    assert len(final.validation_score_) > 0 and final.n_iter_ >= 1
