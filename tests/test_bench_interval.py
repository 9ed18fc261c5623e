"""The benchmark's paired bootstrap interval, which says whether a holdout can tell two systems apart."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from run_bench import _decided, difference_interval


def test_a_clearly_better_prediction_is_decided_and_a_copy_is_not() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    close, far = y + rng.normal(scale=0.1, size=400), y + rng.normal(scale=1.0, size=400)
    better = difference_interval("rmse", y, close, far, draws=500)
    assert better[0] > 0.5  # RMSE about 0.1 against 1.0: lower is better, so the difference is positive
    assert _decided(better) == 1
    assert _decided(difference_interval("rmse", y, far, close, draws=500)) == -1
    assert difference_interval("rmse", y, far, far.copy(), draws=200) == (0.0, 0.0)
    assert _decided((0.0, 0.0)) == 0 and _decided(None) == 0


def test_two_predictions_that_differ_on_a_few_rows_of_a_small_holdout_are_not_told_apart() -> None:
    # 37 rows, as wine's holdout: the two models agree but on two rows, one wrong for each.
    y = np.array([0, 1, 2] * 12 + [0])
    proba = np.full((37, 3), 0.05)
    proba[np.arange(37), y] = 0.9
    a, b = proba.copy(), proba.copy()
    a[3] = [0.9, 0.05, 0.05]  # row 3 is class 0: a is right, b wrong
    b[3] = [0.05, 0.9, 0.05]
    b[4] = [0.05, 0.9, 0.05]  # row 4 is class 1: b is right, a wrong
    a[4] = [0.05, 0.05, 0.9]
    low, high = difference_interval("log_loss", y, a, b, draws=1000)
    assert low < 0 < high
    assert _decided((low, high)) == 0


def test_resamples_with_one_class_are_skipped_for_roc_auc() -> None:
    y = np.array([0, 0, 0, 0, 1])  # many resamples draw no positive row
    pa = np.array([0.1, 0.2, 0.1, 0.3, 0.9])  # the positive class's probability: a ranks all right
    pb = np.array([0.1, 0.95, 0.1, 0.3, 0.9])  # b ranks one negative row above the positive
    a, b = np.column_stack([1 - pa, pa]), np.column_stack([1 - pb, pb])
    low, high = difference_interval("roc_auc", y, a, b, draws=300)
    assert np.isfinite(low) and np.isfinite(high)
    assert 0 <= low <= high <= 1 and high > 0  # a never ranks worse than b
