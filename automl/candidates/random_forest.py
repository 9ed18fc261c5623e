"""Random forest, and the tree-ensemble search space it shares with extra trees."""

from __future__ import annotations

from typing import Any

import optuna
from sklearn.base import BaseEstimator

from automl.candidates.base import ALL_TASKS, Family, SelectionContext, is_classification, param
from automl.candidates.forest import RandomForestClassifierCapped, RandomForestRegressorCapped

NAME = "random_forest"

# Strings rather than a str/float mix so a JSON round trip cannot turn 1.0 (all features) into
# the int 1 (a single feature).
MAX_FEATURES = ["sqrt", "log2", "0.5", "1.0"]
# 0 stands for "no depth limit": Optuna choices must be JSON primitives and None is avoided.
MAX_DEPTH = [0, 4, 8, 16, 32]


# A default forest trial (200 deep trees) costs roughly rows x features / this many seconds on one
# core (measured: 39k x 9 diamonds rows, ~30 s on 2 cores). Above it, one trial would take more
# than a sixth of the budget, better spent on boosting, so the family is deferred unless included.
CELLS_PER_BUDGET_SECOND = 2_000


def forest_skip_reason(name: str, ctx: SelectionContext, cells_per_second: float) -> str | None:
    """Defer a forest family when one default trial would take a large share of the budget."""
    if ctx.time_budget_s is None:
        return None
    cells = ctx.rows * max(ctx.features, 1)
    if cells > cells_per_second * ctx.time_budget_s:
        return (
            f"{name} deferred: {ctx.rows:,} rows x {ctx.features} features is large for a "
            f"{ctx.time_budget_s:g} s budget (one trial would take a large share of it; include it to try it anyway)"
        )
    return None


def skip_reason(ctx: SelectionContext) -> str | None:
    return forest_skip_reason(NAME, ctx, CELLS_PER_BUDGET_SECOND)


def forest_defaults(task: str) -> dict[str, Any]:
    """scikit-learn's own defaults, with more trees."""
    return {
        "n_estimators": 200,
        "max_features": "sqrt" if is_classification(task) else "1.0",
        "min_samples_leaf": 1,
        "max_depth": 0,
    }


def suggest_forest(trial: optuna.trial.BaseTrial, family: str) -> dict[str, Any]:
    """The tree-ensemble space, registered under ``family``'s prefix."""
    return {
        "n_estimators": trial.suggest_int(param(family, "n_estimators"), 50, 500, log=True),
        "max_features": trial.suggest_categorical(param(family, "max_features"), MAX_FEATURES),
        "min_samples_leaf": trial.suggest_int(param(family, "min_samples_leaf"), 1, 20, log=True),
        "max_depth": trial.suggest_categorical(param(family, "max_depth"), MAX_DEPTH),
    }


def forest_kwargs(params: dict[str, Any], seed: int, n_jobs: int) -> dict[str, Any]:
    """Turn search-space values into scikit-learn keyword arguments."""
    max_features = params["max_features"]
    depth = int(params["max_depth"])
    return {
        "n_estimators": int(params["n_estimators"]),
        "max_features": max_features if max_features in ("sqrt", "log2") else float(max_features),
        "min_samples_leaf": int(params["min_samples_leaf"]),
        "max_depth": depth or None,
        "random_state": seed,
        "n_jobs": n_jobs,
    }


def suggest(trial: optuna.trial.BaseTrial, task: str) -> dict[str, Any]:
    return suggest_forest(trial, NAME)


def build(params: dict[str, Any], task: str, seed: int, n_jobs: int) -> BaseEstimator:
    kwargs = forest_kwargs(params, seed, n_jobs)
    return RandomForestClassifierCapped(**kwargs) if is_classification(task) else RandomForestRegressorCapped(**kwargs)


def selected_reason(ctx: SelectionContext) -> str:
    return f"selected: robust tree ensemble for mixed features, little tuning needed on {ctx.rows:,} rows"


# One thread to two: 43.7 s to 19.0 s on 43,000 x 9 (diamonds): trees grow in parallel.
FAMILY = Family(
    name=NAME,
    label="Random forest",
    tasks=ALL_TASKS,
    style="tree",
    defaults=forest_defaults,
    suggest=suggest,
    build=build,
    skip_reason=skip_reason,
    selected_reason=selected_reason,
    thread_gain=0.8,
)
