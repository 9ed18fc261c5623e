"""Linear baseline: logistic regression for classification, ridge regression for regression."""

from __future__ import annotations

from typing import Any

import optuna
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression, Ridge

from automl.candidates.base import ALL_TASKS, Family, SelectionContext, is_classification, param

NAME = "linear"


def defaults(task: str) -> dict[str, Any]:
    return {"C": 1.0} if is_classification(task) else {"alpha": 1.0}


def suggest(trial: optuna.trial.BaseTrial, task: str) -> dict[str, Any]:
    if is_classification(task):
        return {"C": trial.suggest_float(param(NAME, "C"), 1e-3, 1e3, log=True)}
    return {"alpha": trial.suggest_float(param(NAME, "alpha"), 1e-3, 1e3, log=True)}


def build(params: dict[str, Any], task: str, seed: int, n_jobs: int) -> BaseEstimator:
    # LogisticRegression gets no n_jobs: it has had no effect since scikit-learn 1.8 and warns.
    if is_classification(task):
        return LogisticRegression(C=params["C"], solver="lbfgs", max_iter=2000, random_state=seed)
    return Ridge(alpha=params["alpha"], random_state=seed)


def selected_reason(ctx: SelectionContext) -> str:
    return f"selected: linear baseline, fast on {ctx.rows:,} rows"


FAMILY = Family(
    name=NAME,
    label="Linear model",
    tasks=ALL_TASKS,
    style="scaled",
    defaults=defaults,
    suggest=suggest,
    build=build,
    selected_reason=selected_reason,
)
