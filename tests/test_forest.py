"""Forests with a time cap and a size cap: scikit-learn conformance, the same trees as
scikit-learn's forest when uncapped, whole trees kept when a cap stops them, and a final fit
bounded by its estimate."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import ExtraTreesClassifier, RandomForestRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from automl.artifacts import pickled_size
from automl.candidates.forest import (
    FIRST_TREES,
    ExtraTreesClassifierCapped,
    ExtraTreesRegressorCapped,
    RandomForestClassifierCapped,
    RandomForestRegressorCapped,
)


def _expected_failures(estimator: Any) -> dict[str, str]:
    """What scikit-learn expects its own random forests to fail: bootstrap rows are drawn with the
    weights, so weights are not the same as repeated rows."""
    if not isinstance(estimator, RandomForestClassifierCapped | RandomForestRegressorCapped):
        return {}
    why = "bootstrap sampling: a weight is not a repeated row (as for scikit-learn's own forest)"
    return {f"check_sample_weight_equivalence_on_{kind}_data": why for kind in ("dense", "sparse")}


@parametrize_with_checks(  # type: ignore[untyped-decorator]
    [
        RandomForestClassifierCapped(n_estimators=10, random_state=0),
        RandomForestRegressorCapped(n_estimators=10, random_state=0),
        ExtraTreesClassifierCapped(n_estimators=10, random_state=0, max_time_s=30.0),
        ExtraTreesRegressorCapped(n_estimators=10, random_state=0, max_time_s=30.0),
    ],
    expected_failed_checks=_expected_failures,
)
def test_capped_forests_conform_to_scikit_learn(estimator: Any, check: Any) -> None:
    check(estimator)


def _xy(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 8))
    return X, X[:, 0] + X[:, 1] ** 2 + rng.normal(scale=0.3, size=rows)


@pytest.mark.parametrize("max_time_s", [None, 600.0])
def test_a_forest_with_time_enough_grows_the_same_trees_as_scikit_learns(max_time_s: float | None) -> None:
    X, y = _xy(1_000)
    ours = RandomForestRegressorCapped(n_estimators=45, max_features=1.0, random_state=3, max_time_s=max_time_s)
    theirs = RandomForestRegressor(n_estimators=45, max_features=1.0, random_state=3)
    ours.fit(X, y)
    assert len(ours.estimators_) == 45
    np.testing.assert_array_equal(ours.predict(X), theirs.fit(X, y).predict(X))
    labels = y > 1
    capped = ExtraTreesClassifierCapped(n_estimators=33, random_state=1, max_time_s=max_time_s).fit(X, labels)
    plain = ExtraTreesClassifier(n_estimators=33, random_state=1).fit(X, labels)
    np.testing.assert_array_equal(capped.predict_proba(X), plain.predict_proba(X))


def test_the_time_cap_stops_growing_trees_and_keeps_a_whole_forest() -> None:
    X, y = _xy(20_000)
    model = RandomForestRegressorCapped(n_estimators=5_000, max_features=1.0, random_state=0, n_jobs=1, max_time_s=1.0)
    started = time.monotonic()
    model.fit(X, y)
    elapsed = time.monotonic() - started
    assert 10 <= len(model.estimators_) < 5_000
    assert elapsed < 30  # loose: stopped by the cap, not by the trees
    # The configuration is unchanged (a clone asks for the same forest), and the forest predicts
    # as the mean of the trees it has.
    assert model.get_params()["n_estimators"] == 5_000 and clone(model).get_params() == model.get_params()
    mean = np.mean([tree.predict(X[:50]) for tree in model.estimators_], axis=0)
    np.testing.assert_allclose(model.predict(X[:50]), mean)
    # Fitted again, it starts over rather than adding to the trees it has.
    again = model.set_params(n_estimators=20, max_time_s=600.0).fit(X[:500], y[:500])
    assert len(again.estimators_) == 20


@pytest.mark.parametrize("max_time_s", [None, 600.0])
def test_the_size_cap_stops_growing_trees_before_the_forest_passes_it(max_time_s: float | None) -> None:
    X, y = _xy(4_000)
    one_tree = pickled_size(ExtraTreesRegressorCapped(n_estimators=FIRST_TREES, max_mb=None).fit(X, y)) / FIRST_TREES
    cap_mb = 35 * one_tree / 1e6  # room for about 35 deep trees of these rows
    model = ExtraTreesRegressorCapped(n_estimators=200, random_state=0, max_time_s=max_time_s, max_mb=cap_mb)
    model.fit(X, y)
    assert FIRST_TREES < len(model.estimators_) < 200
    assert pickled_size(model) <= 1.1 * cap_mb * 1e6  # judged from the first trees: near, not exact
    assert model.get_params()["n_estimators"] == 200  # the configuration is unchanged
    mean = np.mean([tree.predict(X[:50]) for tree in model.estimators_], axis=0)
    np.testing.assert_allclose(model.predict(X[:50]), mean)
    # The same forest without the cap grows every tree, and a cap below the first trees keeps those.
    assert len(model.set_params(max_mb=None).fit(X, y).estimators_) == 200
    assert len(model.set_params(max_mb=one_tree / 1e6).fit(X, y).estimators_) == FIRST_TREES
