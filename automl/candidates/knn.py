"""k-nearest neighbours on standardised features."""

from __future__ import annotations

from typing import Any

import optuna
from sklearn.base import BaseEstimator
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from automl.candidates.base import ALL_TASKS, Family, SelectionContext, is_classification, param

NAME = "knn"
# Prediction cost grows with rows, and distances lose meaning in many dimensions.
MAX_ROWS = 50_000
MAX_FEATURES = 200


def defaults(task: str) -> dict[str, Any]:
    # Ten uniform neighbours give smoother probabilities than scikit-learn's five.
    return {"n_neighbors": 10, "weights": "uniform"}


def suggest(trial: optuna.trial.BaseTrial, task: str) -> dict[str, Any]:
    return {
        "n_neighbors": trial.suggest_int(param(NAME, "n_neighbors"), 1, 50, log=True),
        "weights": trial.suggest_categorical(param(NAME, "weights"), ["uniform", "distance"]),
    }


def build(params: dict[str, Any], task: str, seed: int, n_jobs: int) -> BaseEstimator:
    kwargs = {"n_neighbors": int(params["n_neighbors"]), "weights": params["weights"], "n_jobs": n_jobs}
    return KNeighborsClassifier(**kwargs) if is_classification(task) else KNeighborsRegressor(**kwargs)


def skip_reason(ctx: SelectionContext) -> str | None:
    if ctx.rows > MAX_ROWS:
        return f"{NAME} skipped: {ctx.rows:,} rows > {MAX_ROWS:,}"
    if ctx.features > MAX_FEATURES:
        return f"{NAME} skipped: {ctx.features:,} features > {MAX_FEATURES:,}"
    return None


def selected_reason(ctx: SelectionContext) -> str:
    return (
        f"selected: nearest neighbours, {ctx.rows:,} rows <= {MAX_ROWS:,} "
        f"and {ctx.features:,} features <= {MAX_FEATURES:,}"
    )


FAMILY = Family(
    name=NAME,
    label="k-nearest neighbours",
    tasks=ALL_TASKS,
    style="scaled",
    defaults=defaults,
    suggest=suggest,
    build=build,
    skip_reason=skip_reason,
    selected_reason=selected_reason,
)
