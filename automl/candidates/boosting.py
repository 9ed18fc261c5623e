"""What the LightGBM, CatBoost and XGBoost families share: early stopping on an inner validation split,
a time cap, native categoricals by column mask, and the scikit-learn estimator contract.

``n_estimators`` is a cap, not a count: the booster stops when its inner validation score has
not improved for :data:`PATIENCE` rounds, or when ``max_time_s`` has passed. On data small
enough to refit cheaply (below :data:`REFIT_MAX_ROWS`) the best round count found that way is
then refit on every row, so no training row is lost to the inner split. Below
:data:`EARLY_STOPPING_MIN_ROWS` the inner split would be too small to stop on, and the cap is
used as the round count.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

EARLY_STOPPING_MIN_ROWS = 200
REFIT_MAX_ROWS = 20_000
VALIDATION_FRACTION = 0.15
PATIENCE = 50
REFIT_ROUNDS_FACTOR = 1.1  # a refit on all rows (1/0.85 more of them) may use a few more rounds


class Booster(BaseEstimator):  # type: ignore[misc]
    """Base of the boosted-tree estimators: subclasses implement ``_fit_rounds`` and ``_raw_predict``.

    ``params`` holds the library's own hyperparameters (``n_estimators`` is the round cap);
    ``categorical_features`` is a boolean mask over the input columns whose values are category
    codes (negative for missing or unseen).
    """

    _is_classifier = False

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        categorical_features: list[bool] | None = None,
        n_jobs: int = 1,
        random_state: int = 0,
        max_time_s: float | None = None,
    ) -> None:
        self.params = params
        self.categorical_features = categorical_features
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.max_time_s = max_time_s

    # -- the contract subclasses fill in -------------------------------------------------------

    def _fit_rounds(
        self,
        X: np.ndarray,
        y: np.ndarray,
        valid: tuple[np.ndarray, np.ndarray] | None,
        rounds: int,
        deadline: float | None,
    ) -> tuple[Any, int]:
        """Fit the native model with at most ``rounds`` rounds, early-stopped on ``valid`` when
        given; return it and the number of rounds it kept."""
        raise NotImplementedError

    def _raw_predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        """Probabilities (classifier, one column per entry of ``classes_``) or values."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # boosted trees learn where missing values go
        return tags

    def _categorical_columns(self, width: int) -> list[int]:
        mask = self.categorical_features
        if mask is None:
            return []
        if len(mask) != width:
            raise ValueError(
                f"The 'categorical_features' parameter must have one flag per column ({width}). "
                f"Got {len(mask)} instead."
            )
        return [i for i, flag in enumerate(mask) if flag]

    def _rounds_cap(self) -> int:
        return int((self.params or {}).get("n_estimators", 100))

    def fit(self, X: Any, y: Any) -> Booster:
        """Fit with early stopping on an inner split (then refit on all rows when small)."""
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan")
        if len(y) < 2:
            raise ValueError(f"Boosting needs at least 2 samples; got {len(y)} sample.")
        if self._is_classifier:
            check_classification_targets(y)
            self.classes_, y = np.unique(y, return_inverse=True)
        deadline = None if self.max_time_s is None else time.monotonic() + float(self.max_time_s)
        self.cat_columns_ = self._categorical_columns(X.shape[1])
        cap = self._rounds_cap()
        n = len(y)
        if self._is_classifier and len(self.classes_) < 2:  # one class: nothing to learn
            self.model_, self.n_rounds_ = None, 0
            return self
        if n < EARLY_STOPPING_MIN_ROWS:
            self.model_, self.n_rounds_ = self._fit_rounds(X, y, None, cap, deadline)
            return self
        stratify = y if self._is_classifier and np.bincount(y).min() >= 2 else None
        train, valid = train_test_split(
            np.arange(n), test_size=VALIDATION_FRACTION, random_state=self.random_state, stratify=stratify
        )
        model, rounds = self._fit_rounds(X[train], y[train], (X[valid], y[valid]), cap, deadline)
        if n <= REFIT_MAX_ROWS and (deadline is None or time.monotonic() < deadline):
            refit_rounds = max(1, min(cap, round(rounds * REFIT_ROUNDS_FACTOR)))
            model, rounds = self._fit_rounds(X, y, None, refit_rounds, deadline)
        self.model_, self.n_rounds_ = model, rounds
        return self

    def _checked(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_rounds_")
        checked: np.ndarray = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        return checked


class BoostedClassifier(ClassifierMixin, Booster):  # type: ignore[misc]
    """A boosted-tree classifier with ``predict_proba`` over ``classes_``."""

    _is_classifier = True

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per entry of ``classes_``."""
        X = self._checked(X)
        if len(self.classes_) < 2:
            return np.ones((len(X), 1))
        proba = np.asarray(self._raw_predict(self.model_, X), dtype=float)
        if proba.ndim == 1:
            proba = np.column_stack([1.0 - proba, proba])
        return proba

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        proba = self.predict_proba(X)
        labels: np.ndarray = self.classes_[np.argmax(proba, axis=1)]
        return labels


class BoostedRegressor(RegressorMixin, Booster):  # type: ignore[misc]
    """A boosted-tree regressor."""

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values."""
        X = self._checked(X)
        return np.asarray(self._raw_predict(self.model_, X), dtype=float).ravel()
