"""XGBoost gradient-boosted trees (histogram method) on ordinal-encoded features.

``n_estimators`` is a cap: the booster stops early on an inner validation split and at its time
cap, as LightGBM and CatBoost do (:mod:`automl.candidates.boosting`). XGBoost is imported only
when a model fits or predicts.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import optuna
from sklearn.base import BaseEstimator

from automl.candidates.base import ALL_TASKS, Family, SelectionContext, is_classification, param
from automl.candidates.boosting import PATIENCE, BoostedClassifier, BoostedRegressor, Booster

NAME = "xgboost"


def defaults(task: str) -> dict[str, Any]:
    return {
        "n_estimators": 300,
        "learning_rate": 0.1,
        "max_depth": 6,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 1.0,
        "reg_lambda": 1.0,
    }


def suggest(trial: optuna.trial.BaseTrial, task: str) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int(param(NAME, "n_estimators"), 50, 1000, log=True),
        "learning_rate": trial.suggest_float(param(NAME, "learning_rate"), 0.01, 0.3, log=True),
        "max_depth": trial.suggest_int(param(NAME, "max_depth"), 2, 10),
        "subsample": trial.suggest_float(param(NAME, "subsample"), 0.5, 1.0),
        "colsample_bytree": trial.suggest_float(param(NAME, "colsample_bytree"), 0.5, 1.0),
        "min_child_weight": trial.suggest_float(param(NAME, "min_child_weight"), 0.5, 20.0, log=True),
        "reg_lambda": trial.suggest_float(param(NAME, "reg_lambda"), 1e-3, 10.0, log=True),
    }


def _time_cap(deadline: float) -> Any:
    """An XGBoost callback that stops boosting once the fit's time is up (its rounds are kept)."""
    from xgboost.callback import TrainingCallback

    class TimeCap(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            return time.monotonic() > deadline

    return TimeCap()


class _XGBoost(Booster):
    """The native fit shared by the classifier and the regressor."""

    def _fit_rounds(
        self,
        X: np.ndarray,
        y: np.ndarray,
        valid: tuple[np.ndarray, np.ndarray] | None,
        rounds: int,
        deadline: float | None,
    ) -> tuple[Any, int]:
        import xgboost as xgb

        p = self.params or {}
        native: dict[str, Any] = {
            "eta": float(p.get("learning_rate", 0.1)),
            "max_depth": int(p.get("max_depth", 6)),
            "subsample": float(p.get("subsample", 1.0)),
            "colsample_bytree": float(p.get("colsample_bytree", 1.0)),
            "min_child_weight": float(p.get("min_child_weight", 1.0)),
            "lambda": float(p.get("reg_lambda", 1.0)),
            "tree_method": "hist",
            "seed": self.random_state,
            "nthread": self.n_jobs if self.n_jobs > 0 else (os.cpu_count() or 1),
            "verbosity": 0,
        }
        if not self._is_classifier:
            native.update(objective="reg:squarederror", eval_metric="rmse")
        elif len(self.classes_) > 2:
            # The class count is given, not inferred: a class missing from the inner split's
            # training part is no error, it just gets no leaf weight of its own.
            native.update(objective="multi:softprob", num_class=len(self.classes_), eval_metric="mlogloss")
        else:
            native.update(objective="binary:logistic", eval_metric="logloss")
        callbacks: list[Any] = [] if deadline is None else [_time_cap(deadline)]
        evals: list[Any] = []
        if valid is not None:
            evals = [(xgb.DMatrix(valid[0], label=valid[1], nthread=native["nthread"]), "valid")]
            callbacks.append(xgb.callback.EarlyStopping(rounds=PATIENCE, save_best=True))
        train = xgb.DMatrix(X, label=y, nthread=native["nthread"])
        booster = xgb.train(native, train, num_boost_round=rounds, evals=evals, callbacks=callbacks, verbose_eval=False)
        return booster, int(booster.num_boosted_rounds())

    def _model_threads(self, model: Any, n_jobs: int) -> None:
        model.set_param("nthread", n_jobs if n_jobs > 0 else (os.cpu_count() or 1))

    def _raw_predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        import xgboost as xgb

        return np.asarray(model.predict(xgb.DMatrix(X)))


class XGBoostClassifier(_XGBoost, BoostedClassifier):
    """XGBoost classifier with early stopping and a time cap."""


class XGBoostRegressor(_XGBoost, BoostedRegressor):
    """XGBoost regressor with early stopping and a time cap."""


def build(params: dict[str, Any], task: str, seed: int, n_jobs: int) -> BaseEstimator:
    # The labels arrive encoded 0..K-1; the booster picks binary or multiclass from their count.
    cls = XGBoostClassifier if is_classification(task) else XGBoostRegressor
    return cls(params=dict(params), n_jobs=n_jobs, random_state=seed)


def selected_reason(ctx: SelectionContext) -> str:
    return f"selected: gradient-boosted trees, usually strongest on tabular data ({ctx.rows:,} rows)"


# One thread to two: 1.40 s to 0.77 s on 43,000 x 9 (diamonds), none on digits.
FAMILY = Family(
    name=NAME,
    label="XGBoost",
    tasks=ALL_TASKS,
    style="tree",
    defaults=defaults,
    suggest=suggest,
    build=build,
    selected_reason=selected_reason,
    thread_gain=0.2,
    predict_cost=0.4,
    predict_thread_gain=0.8,
)
