"""scikit-learn's histogram gradient boosting, fed native categoricals and raw missing values."""

from __future__ import annotations

from typing import Any

import optuna
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from automl.candidates.base import ALL_TASKS, Family, SelectionContext, is_classification, param

NAME = "hist_gradient_boosting"


def defaults(task: str) -> dict[str, Any]:
    # scikit-learn's defaults, except l2_regularization: 0 lies outside the log-scale range.
    return {
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
        "l2_regularization": 1e-4,
        "max_iter": 100,
    }


def suggest(trial: optuna.trial.BaseTrial, task: str) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float(param(NAME, "learning_rate"), 0.01, 0.3, log=True),
        "max_leaf_nodes": trial.suggest_int(param(NAME, "max_leaf_nodes"), 8, 128, log=True),
        "min_samples_leaf": trial.suggest_int(param(NAME, "min_samples_leaf"), 5, 100, log=True),
        "l2_regularization": trial.suggest_float(param(NAME, "l2_regularization"), 1e-4, 10.0, log=True),
        "max_iter": trial.suggest_int(param(NAME, "max_iter"), 50, 500, log=True),
    }


def build(params: dict[str, Any], task: str, seed: int, n_jobs: int) -> BaseEstimator:
    # No n_jobs: the estimator threads through OpenMP. categorical_features is set by
    # build_estimator, which knows the preprocessed column layout.
    kwargs: dict[str, Any] = {
        "learning_rate": float(params["learning_rate"]),
        "max_leaf_nodes": int(params["max_leaf_nodes"]),
        "min_samples_leaf": int(params["min_samples_leaf"]),
        "l2_regularization": float(params["l2_regularization"]),
        "max_iter": int(params["max_iter"]),
        "early_stopping": "auto",
        "random_state": seed,
    }
    if is_classification(task):
        return HistGradientBoostingClassifier(**kwargs)
    return HistGradientBoostingRegressor(**kwargs)


def selected_reason(ctx: SelectionContext) -> str:
    natively = f", {ctx.categorical} categorical column(s) handled natively" if ctx.categorical else ""
    return f"selected: gradient boosting with native missing values{natively}"


FAMILY = Family(
    name=NAME,
    label="Histogram gradient boosting",
    tasks=ALL_TASKS,
    style="native",
    defaults=defaults,
    suggest=suggest,
    build=build,
    selected_reason=selected_reason,
)
