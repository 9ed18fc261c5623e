"""RBF-kernel support vector machines on standardised features."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from automl.candidates.base import ALL_TASKS, Family, SelectionContext, is_classification, param

NAME = "svm"
# Kernel SVM training grows between quadratically and cubically with the number of rows.
MAX_ROWS = 10_000
CALIBRATION_FOLDS = 3
GAMMA: list[str | float] = ["scale", 0.001, 0.01, 0.1, 1.0]


def defaults(task: str) -> dict[str, Any]:
    return {"C": 1.0, "gamma": "scale"}


def suggest(trial: optuna.trial.BaseTrial, task: str) -> dict[str, Any]:
    return {
        "C": trial.suggest_float(param(NAME, "C"), 1e-2, 1e3, log=True),
        "gamma": trial.suggest_categorical(param(NAME, "gamma"), GAMMA),
    }


class CalibratedSVC(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """RBF ``SVC`` with probabilities from sigmoid calibration on out-of-fold decision values.

    The replacement for ``SVC(probability=True)``, deprecated in scikit-learn 1.9. One SVC is fitted
    on all rows (``ensemble=False``); the number of calibration folds shrinks to the smallest class
    count, down to 2, so a rare class does not fail the fit.
    """

    def __init__(
        self,
        C: float = 1.0,
        gamma: str | float = "scale",
        random_state: int | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.C = C
        self.gamma = gamma
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any) -> CalibratedSVC:
        """Fit the SVC and its calibration."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        counts = np.unique(y, return_counts=True)[1]
        folds = max(2, min(CALIBRATION_FOLDS, int(counts.min())))
        svc = SVC(C=self.C, gamma=self.gamma, random_state=self.random_state)
        self.calibrated_ = CalibratedClassifierCV(
            svc, method="sigmoid", cv=folds, ensemble=False, n_jobs=self.n_jobs
        ).fit(X, y)
        self.classes_ = self.calibrated_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated class probabilities, one column per class in ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.asarray(self.calibrated_.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class."""
        proba = self.predict_proba(X)
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])


def build(params: dict[str, Any], task: str, seed: int, n_jobs: int) -> BaseEstimator:
    C, gamma = float(params["C"]), params["gamma"]
    if is_classification(task):
        return CalibratedSVC(C=C, gamma=gamma, random_state=seed, n_jobs=n_jobs)
    # Standardising the target keeps SVR's epsilon tube and C meaningful whatever the target scale.
    return TransformedTargetRegressor(regressor=SVR(C=C, gamma=gamma), transformer=StandardScaler())


def skip_reason(ctx: SelectionContext) -> str | None:
    if ctx.rows > MAX_ROWS:
        return f"{NAME} skipped: {ctx.rows:,} rows > {MAX_ROWS:,}"
    return None


def selected_reason(ctx: SelectionContext) -> str:
    return f"selected: kernel SVM, {ctx.rows:,} rows <= {MAX_ROWS:,}"


FAMILY = Family(
    name=NAME,
    label="Support vector machine",
    tasks=ALL_TASKS,
    style="scaled",
    defaults=defaults,
    suggest=suggest,
    build=build,
    skip_reason=skip_reason,
    selected_reason=selected_reason,
)
