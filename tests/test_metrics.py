"""Metric scores, directions and defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from automl.errors import InputError
from automl.metrics import (
    DEFAULT_METRIC,
    METRICS,
    get_metric,
    holdout_report,
    is_better,
    metrics_for_task,
)

Y_BIN = np.array([0, 1, 1, 0, 1, 0, 1, 1])
P_BIN = np.array([0.2, 0.7, 0.4, 0.1, 0.9, 0.6, 0.8, 0.55])
PROBA_BIN = np.column_stack([1 - P_BIN, P_BIN])

Y_MULTI = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0])
PROBA_MULTI = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.3, 0.6],
        [0.3, 0.3, 0.4],
        [0.5, 0.4, 0.1],
        [0.6, 0.3, 0.1],
        [0.2, 0.2, 0.6],
        [0.1, 0.8, 0.1],
        [0.3, 0.4, 0.3],
    ]
)

Y_REG = np.array([3.0, -0.5, 2.0, 7.0, 4.2])
P_REG = np.array([2.5, 0.0, 2.1, 7.8, 3.9])


def test_binary_scores_match_sklearn() -> None:
    labels = (P_BIN >= 0.5).astype(int)
    expected = {
        "accuracy": skm.accuracy_score(Y_BIN, labels),
        "balanced_accuracy": skm.balanced_accuracy_score(Y_BIN, labels),
        "f1_macro": skm.f1_score(Y_BIN, labels, average="macro"),
        "f1": skm.f1_score(Y_BIN, labels),
        "roc_auc": skm.roc_auc_score(Y_BIN, P_BIN),
        "log_loss": skm.log_loss(Y_BIN, P_BIN),
    }
    for name, value in expected.items():
        assert get_metric(name).score(Y_BIN, PROBA_BIN) == pytest.approx(value), name


def test_multiclass_scores_match_sklearn() -> None:
    labels = PROBA_MULTI.argmax(axis=1)
    expected = {
        "accuracy": skm.accuracy_score(Y_MULTI, labels),
        "balanced_accuracy": skm.balanced_accuracy_score(Y_MULTI, labels),
        "f1_macro": skm.f1_score(Y_MULTI, labels, average="macro"),
        "roc_auc": skm.roc_auc_score(Y_MULTI, PROBA_MULTI, multi_class="ovr", average="macro"),
        "log_loss": skm.log_loss(Y_MULTI, PROBA_MULTI),
    }
    for name, value in expected.items():
        assert get_metric(name).score(Y_MULTI, PROBA_MULTI) == pytest.approx(value), name


def test_regression_scores_match_sklearn() -> None:
    expected = {
        "rmse": skm.root_mean_squared_error(Y_REG, P_REG),
        "mae": skm.mean_absolute_error(Y_REG, P_REG),
        "r2": skm.r2_score(Y_REG, P_REG),
        "mape": skm.mean_absolute_percentage_error(Y_REG, P_REG),
    }
    for name, value in expected.items():
        assert get_metric(name).score(Y_REG, P_REG) == pytest.approx(value), name


def test_fold_lacking_a_class_still_scores() -> None:
    # Class 2 is absent from this fold's y_true but has a probability column.
    keep = Y_MULTI != 2
    y, proba = Y_MULTI[keep], PROBA_MULTI[keep]
    for name in metrics_for_task("multiclass"):
        value = get_metric(name).score(y, proba)
        assert math.isfinite(value), name
    assert get_metric("log_loss").score(y, proba) == pytest.approx(skm.log_loss(y, proba, labels=[0, 1, 2]))
    auc_by_class = [skm.roc_auc_score(y == k, proba[:, k]) for k in (0, 1)]
    assert get_metric("roc_auc").score(y, proba) == pytest.approx(np.mean(auc_by_class))


def test_classification_metric_rejects_1d_prediction() -> None:
    with pytest.raises(ValueError, match="probability matrix"):
        get_metric("accuracy").score(Y_BIN, P_BIN)


def test_direction_and_is_better() -> None:
    assert not get_metric("log_loss").greater_is_better
    assert not get_metric("rmse").greater_is_better
    assert get_metric("r2").greater_is_better
    assert get_metric("roc_auc").needs_proba
    assert is_better(get_metric("roc_auc"), 0.9, 0.8)
    assert is_better(get_metric("log_loss"), 0.2, 0.3)
    assert not is_better(get_metric("rmse"), 1.0, 1.0)
    assert is_better(get_metric("rmse"), 1.0, float("nan"))
    assert not is_better(get_metric("rmse"), float("nan"), 1.0)


def test_defaults_and_metrics_per_task() -> None:
    assert DEFAULT_METRIC == {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
    for task, name in DEFAULT_METRIC.items():
        assert name in metrics_for_task(task)
        assert task in METRICS[name].tasks
    assert "f1" in metrics_for_task("binary")
    assert "f1" not in metrics_for_task("multiclass")
    assert metrics_for_task("regression") == ["rmse", "mae", "r2", "mape"]


def test_unknown_metric_names_the_valid_ones() -> None:
    with pytest.raises(InputError, match="roc_auc") as info:
        get_metric("auc")
    assert "'auc'" in str(info.value)
    with pytest.raises(InputError):
        metrics_for_task("ranking")


def test_holdout_report_classification() -> None:
    report = holdout_report("multiclass", Y_MULTI, PROBA_MULTI)
    assert set(report) == {
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "roc_auc",
        "log_loss",
        "confusion_matrix",
    }
    cm = skm.confusion_matrix(Y_MULTI, PROBA_MULTI.argmax(axis=1)).tolist()
    assert report["confusion_matrix"] == cm


def test_holdout_report_skips_undefined_metrics() -> None:
    # One class only: ROC AUC is undefined and is left out; the confusion matrix keeps both labels.
    y = np.zeros(4, dtype=int)
    report = holdout_report("binary", y, PROBA_BIN[:4])
    assert "roc_auc" not in report
    assert "accuracy" in report
    assert report["confusion_matrix"] == [[3, 1], [0, 0]]
    with_zero = holdout_report("regression", np.array([0.0, 1.0, 2.0]), np.array([0.1, 1.0, 2.5]))
    assert set(with_zero) == {"rmse", "mae", "r2"}
    assert "mape" in holdout_report("regression", Y_REG, P_REG)


def test_log_loss_matches_sklearn_on_confident_missing_and_unnormalised_probabilities() -> None:
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(0)
    metric = get_metric("log_loss")
    for k in (2, 3, 7):
        proba = rng.dirichlet(np.ones(k), size=60)
        proba[:5] = np.eye(k)[rng.integers(0, k, size=5)]  # certain rows, some of them wrong: clipped
        proba[5:10] *= 1.0 + 1e-4  # float32-style rows that miss summing to one: renormalised
        y = rng.integers(0, k - 1, size=60)  # the last class never occurs
        expected = log_loss(y, proba / proba.sum(axis=1, keepdims=True), labels=list(range(k)))
        assert metric.score(y, proba) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="outside"):
        metric.score(np.array([0, 3]), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="finite"), np.errstate(invalid="ignore"):
        metric.score(np.array([0, 1]), np.array([[np.inf, 0.5], [0.5, 0.5]]))


def test_roc_auc_matches_sklearn_with_ties_and_classes_absent_from_a_fold() -> None:
    rng = np.random.default_rng(1)
    metric = get_metric("roc_auc")
    y = rng.integers(0, 2, size=80)
    proba = rng.dirichlet(np.ones(2), size=80)
    proba[:30] = np.round(proba[:30], 1)  # ties across both classes
    assert metric.score(y, proba) == pytest.approx(skm.roc_auc_score(y, proba[:, 1]), rel=1e-12)
    y3 = rng.integers(0, 3, size=90)  # classes 0..2 of 4: the fourth never occurs
    proba4 = np.round(rng.dirichlet(np.ones(4), size=90), 2)
    expected = np.mean([skm.roc_auc_score(y3 == k, proba4[:, k]) for k in range(3)])
    assert metric.score(y3, proba4) == pytest.approx(expected, rel=1e-12)
