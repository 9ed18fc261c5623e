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
