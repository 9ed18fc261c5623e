"""Multi-layer perceptron in Keras 3 (TensorFlow backend), as scikit-learn estimators.

TensorFlow takes seconds to import, so this module never imports it at module level: ``fit``,
``predict`` and unpickling import it through :func:`_keras`. ``automl --help``, leaderboards and
jobs that do not try this family never load it.

Training: 1-3 ReLU ``Dense`` layers (each half as wide as the one before), optional batch
normalisation, dropout and L2 weight decay; Adam on Keras's built-in ``CosineDecay`` schedule with
a linear warm-up (a registered-serializable ``LearningRateSchedule``, so saved models need no
custom objects); early stopping on a held-out validation split, restoring the best weights; an
optional wall-clock limit; and a per-epoch hook (:func:`set_epoch_reporter`) that lets a tuner
prune a trial between epochs.

Prediction runs the trained float32 weights through a float64 NumPy replica of the network
(:func:`_outputs_float64`), so a row's prediction does not depend on the rows around it: Keras's
float32 kernels round a row differently (by ~5e-8) depending on where it lands in a batch.

A fitted estimator pickles its network as Keras-native ``.keras`` bytes with their sha256, and
refuses to load bytes that do not match it.
"""

from __future__ import annotations

from typing import Any

import optuna
from sklearn.base import BaseEstimator

from automl.candidates.base import ALL_TASKS, Family, SelectionContext, is_classification, param
from automl.candidates.mlp.estimator import KerasMLPClassifier, KerasMLPRegressor
from automl.candidates.mlp.runtime import (
    MAX_CATEGORICAL_SHARE,
    MIN_BUDGET_S,
    MIN_ROWS,
    NAME,
    EpochReporter,
    epoch_reporter,
    set_epoch_reporter,
)

# -- the family ---------------------------------------------------------------------------------

BATCH_SIZES = [32, 64, 128, 256, 512]


def hidden_layer_sizes(layers: int, units: int) -> tuple[int, ...]:
    """A funnel: ``units`` in the first layer, halving per layer, never below 8."""
    return tuple(max(8, int(units) >> i) for i in range(int(layers)))


def defaults(task: str) -> dict[str, Any]:
    # Cheap on purpose: two small layers (64, 32) and at most 100 epochs, which early stopping
    # (patience 10) usually ends sooner: about 1.5 s for 1,000 rows on one core.
    return {
        "layers": 2,
        "units": 64,
        "dropout": 0.1,
        "batch_norm": False,
        "l2": 1e-5,
        "learning_rate": 1e-3,
        "batch_size": 128,
        "max_epochs": 100,
    }


def suggest(trial: optuna.trial.BaseTrial, task: str) -> dict[str, Any]:
    return {
        "layers": trial.suggest_int(param(NAME, "layers"), 1, 3),
        "units": trial.suggest_int(param(NAME, "units"), 16, 512, log=True),
        "dropout": trial.suggest_float(param(NAME, "dropout"), 0.0, 0.5),
        "batch_norm": trial.suggest_categorical(param(NAME, "batch_norm"), [False, True]),
        "l2": trial.suggest_float(param(NAME, "l2"), 1e-7, 1e-2, log=True),
        "learning_rate": trial.suggest_float(param(NAME, "learning_rate"), 1e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical(param(NAME, "batch_size"), BATCH_SIZES),
        "max_epochs": trial.suggest_int(param(NAME, "max_epochs"), 20, 300, log=True),
    }


def build(params: dict[str, Any], task: str, seed: int, n_jobs: int) -> BaseEstimator:
    kwargs: dict[str, Any] = {
        "hidden_layer_sizes": hidden_layer_sizes(params["layers"], params["units"]),
        "dropout": float(params["dropout"]),
        "batch_norm": bool(params["batch_norm"]),
        "l2": float(params["l2"]),
        "learning_rate": float(params["learning_rate"]),
        "batch_size": int(params["batch_size"]),
        "max_epochs": int(params["max_epochs"]),
        "random_state": seed,
        "n_jobs": n_jobs,
    }
    return KerasMLPClassifier(**kwargs) if is_classification(task) else KerasMLPRegressor(**kwargs)


def skip_reason(ctx: SelectionContext) -> str | None:
    if ctx.time_budget_s is not None and ctx.time_budget_s < MIN_BUDGET_S:
        return (
            f"{NAME} deferred: a {ctx.time_budget_s:g} s budget < {MIN_BUDGET_S:g} s (one network trial would "
            "take a large share of it; include it explicitly to try it anyway)"
        )
    if ctx.rows < MIN_ROWS:
        return f"{NAME} skipped: {ctx.rows:,} rows < {MIN_ROWS:,} (a network needs more rows than the tree families)"
    if ctx.features and ctx.categorical / ctx.features > MAX_CATEGORICAL_SHARE:
        return (
            f"{NAME} skipped: {ctx.categorical} of {ctx.features} features are categorical "
            f"(more than {MAX_CATEGORICAL_SHARE:.0%}; trees handle categories better)"
        )
    return None


def selected_reason(ctx: SelectionContext) -> str:
    return (
        f"selected: neural network, {ctx.rows:,} rows >= {MIN_ROWS:,} and "
        f"{ctx.features - ctx.categorical} of {ctx.features} features not categorical"
    )


FAMILY = Family(
    name=NAME,
    label="Neural network (MLP)",
    tasks=ALL_TASKS,
    style="scaled",
    defaults=defaults,
    suggest=suggest,
    build=build,
    skip_reason=skip_reason,
    selected_reason=selected_reason,
)


__all__ = [
    "FAMILY",
    "NAME",
    "EpochReporter",
    "KerasMLPClassifier",
    "KerasMLPRegressor",
    "epoch_reporter",
    "hidden_layer_sizes",
    "set_epoch_reporter",
]
