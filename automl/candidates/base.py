"""The contract every model family implements, and the records that candidate selection returns.

A family declares its search space beside its estimator. One Optuna study holds the conditional
spaces of every family in a job, so each family registers its parameters on the trial under
``"<family>__<param>"`` (see :func:`param`) while ``suggest`` and ``defaults`` return the bare
names. The defaults can therefore be enqueued as the first trial of a family with
``{"family": name, **{f"{name}__{k}": v for k, v in defaults(task).items()}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from sklearn.base import BaseEstimator

from automl.preprocessing import Style

CLASSIFICATION = frozenset({"binary", "multiclass"})
ALL_TASKS = frozenset({"binary", "multiclass", "regression"})


@dataclass(frozen=True)
class SelectionContext:
    """What candidate selection knows about the job: task and the size of the feature table."""

    task: str
    rows: int
    features: int
    categorical: int
    time_budget_s: float | None = None  # the job's wall-clock budget; None when only trials bound it


@dataclass(frozen=True)
class CandidateChoice:
    """Whether one family is tried in a job, and a readable sentence saying why."""

    family: str
    selected: bool
    reason: str


def applies_everywhere(ctx: SelectionContext) -> str | None:
    """``skip_reason`` for families that suit every dataset size."""
    return None


def _generic_selected(ctx: SelectionContext) -> str:
    return f"selected: suits {ctx.rows:,} rows and {ctx.features} features"


@dataclass(frozen=True)
class Family:
    """One model family: its estimator, its search space and when it is worth trying.

    ``defaults(task)`` returns the same keys as ``suggest(trial, task)``, and every default lies
    inside the distribution ``suggest`` registers, so the defaults can be enqueued into a study.
    ``build(params, task, seed, n_jobs)`` returns an unfitted estimator; classifiers always provide
    ``predict_proba``. ``skip_reason(ctx)`` returns ``None`` when the family should be tried, and
    ``selected_reason(ctx)`` the sentence recorded when it is. ``thread_gain`` is the share of each
    thread added to a fit that turns into speed (0: the fit runs on one thread; 1: perfectly
    parallel), so a refit alone on every core is estimated from a trial that ran on a share of them.
    ``predict_cost`` is what predicting a row costs over what the fit cost per training row, so the
    time a fitted model needs to predict the holdout is estimated from its fit's seconds; measured on
    diamonds_x10 (a trial's fit on 166,666 rows predicting the 109,050 holdout rows, one thread):
    LightGBM 1.3, histogram boosting 1.1, XGBoost 0.4, CatBoost (oblivious trees) 0.07; 1 where not
    measured. ``predict_thread_gain`` is ``thread_gain`` for predicting: trees predict each row on
    its own, so a prediction spreads over threads far better than a fit does (kept trial fits on
    300,000 rows x 54 columns predicting 60,000 rows on one thread, then two: LightGBM 32.0 and
    15.0 s, histogram boosting 2.0 and 1.0 s, XGBoost 1.2 and 0.65 s).
    """

    name: str
    label: str
    tasks: frozenset[str]
    style: Style
    defaults: Callable[[str], dict[str, Any]]
    suggest: Callable[[optuna.trial.BaseTrial, str], dict[str, Any]]
    build: Callable[[dict[str, Any], str, int, int], BaseEstimator]
    skip_reason: Callable[[SelectionContext], str | None] = applies_everywhere
    selected_reason: Callable[[SelectionContext], str] = _generic_selected
    thread_gain: float = 0.0
    predict_cost: float = 1.0
    predict_thread_gain: float = 0.0


def param(family: str, key: str) -> str:
    """The name a family's parameter is registered under on a shared trial."""
    return f"{family}__{key}"


def is_classification(task: str) -> bool:
    """True for binary and multiclass tasks."""
    return task in CLASSIFICATION
