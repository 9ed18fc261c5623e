"""Metric name -> scorer and direction, and the default metric per task.

Conventions every caller relies on:

* classification targets are encoded as ints ``0..K-1`` and a prediction is always a probability
  matrix of shape ``(n, K)`` whose column ``j`` is class ``j``; label metrics take the argmax;
* regression predictions are 1-D.

Scores must stay defined on a cross-validation fold that lacks some class, so every classification
metric is computed against the full label set ``0..K-1`` taken from the prediction's width.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_absolute_percentage_error,
    r2_score,
    root_mean_squared_error,
)

from automl.errors import InputError

TASKS = ("binary", "multiclass", "regression")
_CLASSIFICATION = frozenset({"binary", "multiclass"})
_REGRESSION = frozenset({"regression"})

Scorer = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Metric:
    """A named score with its direction and the tasks it applies to."""

    name: str
    greater_is_better: bool
    needs_proba: bool
    tasks: frozenset[str]
    _fn: Scorer = field(repr=False, compare=False)

    def score(self, y_true: np.ndarray, prediction: np.ndarray) -> float:
        """Score ``prediction`` (probabilities ``(n, K)`` or 1-D values) against ``y_true``."""
        y = np.asarray(y_true)
        pred = np.asarray(prediction, dtype=float)
        if self.tasks <= _CLASSIFICATION:
            if pred.ndim != 2:
                raise ValueError(
                    f"The '{self.name}' metric needs a probability matrix of shape (n, K). "
                    f"Got an array of shape {pred.shape} instead."
                )
            y = y.astype(int)
        else:
            pred = pred.ravel()
            y = y.astype(float)
        return float(self._fn(y, pred))


def _labels(proba: np.ndarray) -> list[int]:
    return list(range(proba.shape[1]))


def _accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float(accuracy_score(y, proba.argmax(axis=1)))


def _balanced_accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    # Mean recall over the classes present in y_true. sklearn's balanced_accuracy_score gives the
    # same number but warns when a fold's predictions include a class absent from y_true.
    cm = confusion_matrix(y, proba.argmax(axis=1), labels=_labels(proba))
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def _f1_macro(y: np.ndarray, proba: np.ndarray) -> float:
    return float(f1_score(y, proba.argmax(axis=1), average="macro", zero_division=0.0))


def _f1(y: np.ndarray, proba: np.ndarray) -> float:
    if proba.shape[1] != 2:
        raise ValueError(f"The 'f1' metric is for binary tasks. Got {proba.shape[1]} classes instead.")
    return float(f1_score(y, proba.argmax(axis=1), pos_label=1, zero_division=0.0))


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """sklearn's roc_auc_score for one positive class, as the Mann-Whitney statistic on average
    ranks (ties count one half, as under the trapezoids of the ROC curve), without its input
    checks: ensemble selection scores a blend hundreds of times, and the checks took 20 times the
    arithmetic. tests/test_metrics.py holds it to sklearn's."""
    if not np.isfinite(score).all():
        raise ValueError("ROC AUC needs finite scores")
    n_pos = int(np.count_nonzero(positive))
    n_neg = len(positive) - n_pos
    ranks = rankdata(score)  # average ranks of ties
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    if proba.shape[1] == 2:
        # Raise rather than return sklearn's NaN-with-a-warning, so a NaN never reaches a study.
        if len(np.unique(y)) < 2:
            raise ValueError("ROC AUC is not defined when only one class is present in y_true.")
        return _binary_auc(y == 1, proba[:, 1])
    # One-vs-rest macro average over the classes present in this fold: sklearn's multiclass
    # roc_auc raises as soon as one label has no positive example.
    scores = [_binary_auc(y == k, proba[:, k]) for k in _labels(proba) if 0 < int(np.sum(y == k)) < len(y)]
    if len(scores) < 2:
        raise ValueError("ROC AUC is not defined when fewer than two classes are present in y_true.")
    return float(np.mean(scores))


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    # float32 probabilities (XGBoost) can miss summing to one by more than sklearn's tolerance,
    # which makes it warn; renormalising leaves true probabilities unchanged.
    sums = proba.sum(axis=1, keepdims=True)
    proba = np.divide(proba, sums, out=np.full_like(proba, 1.0 / proba.shape[1]), where=sums > 0)
    # sklearn's log_loss, without its input checks: ensemble selection scores a blend hundreds of
    # times, and on a few hundred rows the checks took 20 times the arithmetic. Same clipping to
    # [eps, 1 - eps], same mean of -log p(true class); tests/test_metrics.py holds it to sklearn's.
    if len(y) == 0 or not np.isfinite(proba).all():
        raise ValueError("log loss needs at least one row and finite probabilities")
    if y.min() < 0 or y.max() >= proba.shape[1]:
        raise ValueError(f"a label of y_true lies outside the {proba.shape[1]} classes of the probabilities")
    eps = np.finfo(proba.dtype).eps
    picked = np.clip(proba[np.arange(len(y)), y], eps, 1 - eps)
    return float(-np.mean(np.log(picked)))


def _rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(root_mean_squared_error(y, pred))


def _mae(y: np.ndarray, pred: np.ndarray) -> float:
    return float(mean_absolute_error(y, pred))


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    return float(r2_score(y, pred))


def _mape(y: np.ndarray, pred: np.ndarray) -> float:
    return float(mean_absolute_percentage_error(y, pred))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", True, False, _CLASSIFICATION, _accuracy),
        Metric("balanced_accuracy", True, False, _CLASSIFICATION, _balanced_accuracy),
        Metric("f1_macro", True, False, _CLASSIFICATION, _f1_macro),
        Metric("f1", True, False, frozenset({"binary"}), _f1),
        Metric("roc_auc", True, True, _CLASSIFICATION, _roc_auc),
        Metric("log_loss", False, True, _CLASSIFICATION, _log_loss),
        Metric("rmse", False, False, _REGRESSION, _rmse),
        Metric("mae", False, False, _REGRESSION, _mae),
        Metric("r2", True, False, _REGRESSION, _r2),
        Metric("mape", False, False, _REGRESSION, _mape),
    )
}

DEFAULT_METRIC: dict[str, str] = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


def get_metric(name: str) -> Metric:
    """Return the metric called ``name``; an unknown name raises :class:`InputError`."""
    try:
        return METRICS[name]
    except KeyError:
        valid = ", ".join(METRICS)
        raise InputError(
            f"The metric '{name}' is not known. Valid metrics: {valid}.",
            hint=f"use one of: {valid}",
        ) from None


def metrics_for_task(task: str) -> list[str]:
    """Names of the metrics that apply to ``task`` (binary, multiclass or regression)."""
    if task not in TASKS:
        raise InputError(
            f"The task '{task}' is not known. Valid tasks: {', '.join(TASKS)}.",
            hint=f"use one of: {', '.join(TASKS)}",
        )
    return [name for name, metric in METRICS.items() if task in metric.tasks]


def is_better(metric: Metric, a: float, b: float) -> bool:
    """True when score ``a`` is strictly better than ``b``; any number beats NaN, NaN beats nothing."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a > b if metric.greater_is_better else a < b


_CLASSIFICATION_REPORT: tuple[str, ...] = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")
_REGRESSION_REPORT: tuple[str, ...] = ("rmse", "mae", "r2", "mape")


def holdout_report(task: str, y_true: np.ndarray, prediction: np.ndarray) -> dict[str, float | list[list[int]]]:
    """Every standard metric for ``task`` on a holdout set, plus the confusion matrix.

    A metric that is undefined on this data (ROC AUC with one class present, MAPE with a zero
    target) is left out rather than failing the report.
    """
    metrics_for_task(task)  # rejects an unknown task before scoring anything
    y = np.asarray(y_true)
    report: dict[str, float | list[list[int]]] = {}
    if task == "regression":
        names = _REGRESSION_REPORT
        if np.any(y.astype(float) == 0):
            # sklearn's MAPE divides by machine epsilon here, giving a meaningless huge number.
            names = tuple(n for n in names if n != "mape")
    else:
        names = _CLASSIFICATION_REPORT
    for name in names:
        try:
            value = METRICS[name].score(y, prediction)
        except ValueError:
            continue
        if math.isfinite(value):
            report[name] = value
    if task != "regression":
        proba = np.asarray(prediction, dtype=float)
        cm = confusion_matrix(y.astype(int), proba.argmax(axis=1), labels=_labels(proba))
        report["confusion_matrix"] = [[int(v) for v in row] for row in cm]
    return report
