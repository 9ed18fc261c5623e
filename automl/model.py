"""The saved model: a scikit-learn estimator that takes raw rows and answers in the data's labels.

Training encodes class labels to ``0..K-1`` once (so every family, XGBoost included, sees the same
codes and out-of-fold probabilities line up column by column). :class:`DecodedClassifier` puts the
original labels back. Ensembles are scikit-learn ``VotingClassifier``/``VotingRegressor`` objects
assembled from members that were already refit, so no member is fitted twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import VotingClassifier, VotingRegressor
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted


class DecodedClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Wraps a classifier trained on codes ``0..K-1`` and answers with the original ``classes``.

    ``temperature`` (set by the finalizer from out-of-fold predictions) calibrates the
    probabilities and keeps them strictly inside (0, 1), see :mod:`automl.calibration`; ``None``
    (models saved before calibration existed) leaves them as the estimator gives them.
    """

    def __init__(
        self,
        estimator: Any = None,
        classes: Any = None,
        temperature: float | None = None,
        probability_floor: float | None = None,
    ) -> None:
        self.estimator = estimator
        self.classes = classes
        self.temperature = temperature
        self.probability_floor = probability_floor

    def fit(self, X: Any, y: Any) -> DecodedClassifier:
        classes = np.asarray(self.classes) if self.classes is not None else np.unique(y)
        lookup = {c: i for i, c in enumerate(classes.tolist())}
        codes = np.array([lookup[v] for v in np.asarray(y).tolist()])
        self.estimator_ = clone(self.estimator).fit(X, codes)
        self.classes_ = classes
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        proba: np.ndarray = aligned_proba(self.estimator_, X, len(self.classes_))
        temperature = getattr(self, "temperature", None)
        if temperature is not None and proba.shape[1] > 1:
            from automl.calibration import PROBABILITY_FLOOR, scale

            floor = getattr(self, "probability_floor", None) or PROBABILITY_FLOOR
            proba = scale(proba, float(temperature), floor)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        labels: np.ndarray = np.asarray(self.classes_)[np.argmax(self.predict_proba(X), axis=1)]
        return labels


def aligned_proba(estimator: Any, X: Any, n_classes: int) -> np.ndarray:
    """Class probabilities with one column per code 0..K-1, even if a fit never saw some class."""
    proba = np.asarray(estimator.predict_proba(X), dtype=float)
    seen = np.asarray(getattr(estimator, "classes_", np.arange(proba.shape[1])), dtype=int)
    if proba.shape[1] == n_classes and np.array_equal(seen, np.arange(n_classes)):
        return proba
    full = np.zeros((proba.shape[0], n_classes))
    full[:, seen] = proba
    return full


def predict_matrix(estimator: Any, X: pd.DataFrame, task: str, n_classes: int) -> np.ndarray:
    """Regression: predictions. Classification: probabilities over codes 0..K-1."""
    if task == "regression":
        return np.asarray(estimator.predict(X), dtype=float)
    return aligned_proba(estimator, X, n_classes)


class FoldBag(BaseEstimator):  # type: ignore[misc]
    """One member's final model: its fit on every row, averaged with the K models its trial's
    cross-validation folds fitted (each on the other folds' rows), ``full_weight`` to the first and
    the rest shared evenly among the folds. The average of the fold models is a bagged estimate
    (as AutoGluon's k-fold bagging): it lowers the variance of a single fit, which is what decides
    a tree model's score on small data, and costs no training, the folds having been fitted to
    score the trial. ``n_classes`` > 0 for a classifier (codes ``0..K-1``; a fold may have missed a
    rare class), 0 for a regressor."""

    def __init__(self, full: Any = None, folds: Any = None, n_classes: int = 0, full_weight: float = 0.5) -> None:
        self.full = full
        self.folds = folds
        self.n_classes = n_classes
        self.full_weight = full_weight

    def _average(self, predict: Any, X: Any) -> np.ndarray:
        folds = list(self.folds or [])
        full = np.asarray(predict(self.full, X), dtype=float)
        if not folds:
            return full
        bagged = np.mean([np.asarray(predict(m, X), dtype=float) for m in folds], axis=0)
        result: np.ndarray = self.full_weight * full + (1.0 - self.full_weight) * bagged
        return result

    @property
    def classes_(self) -> np.ndarray:
        return np.arange(self.n_classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Averaged class probabilities, one column per code ``0..n_classes-1``."""
        return self._average(lambda m, rows: aligned_proba(m, rows, self.n_classes), X)

    def predict(self, X: Any) -> np.ndarray:
        """Regression: the averaged values. Classification: the code of the most probable class."""
        if self.n_classes:
            codes: np.ndarray = np.argmax(self.predict_proba(X), axis=1)
            return codes
        return self._average(lambda m, rows: m.predict(rows), X)


def assemble(
    task: str,
    members: list[Any],
    weights: list[float],
    classes: list[Any] | None,
    temperature: float | None = None,
    probability_floor: float | None = None,
) -> Any:
    """The final model: one member as is, or a soft-voting ensemble of already-fitted members;
    a classifier's probabilities are calibrated with ``temperature``."""
    if len(members) == 1:
        model = members[0]
    elif task == "regression":
        model = VotingRegressor([(f"m{i}", m) for i, m in enumerate(members)], weights=weights)
        model.estimators_ = list(members)
        model.named_estimators_ = Bunch(**{f"m{i}": m for i, m in enumerate(members)})
    else:
        model = VotingClassifier([(f"m{i}", m) for i, m in enumerate(members)], voting="soft", weights=weights)
        model.estimators_ = list(members)
        model.named_estimators_ = Bunch(**{f"m{i}": m for i, m in enumerate(members)})
        model.le_ = LabelEncoder().fit(np.arange(len(classes or [])))
        model.classes_ = model.le_.classes_
    if task == "regression":
        return model
    wrapped = DecodedClassifier(
        model, classes=np.asarray(classes, dtype=object), temperature=temperature, probability_floor=probability_floor
    )
    wrapped.estimator_ = model
    wrapped.classes_ = np.asarray(classes, dtype=object)
    return wrapped
