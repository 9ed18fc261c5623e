"""Probabilities users can trust: temperature scaling fitted on out-of-fold predictions.

The final classifier's probabilities ``p`` become ``softmax(log(max(p, floor)) / T)``, with the
temperature ``T`` chosen to minimise the log loss of the job's out-of-fold predictions (Guo et al.,
2017, "On Calibration of Modern Neural Networks"). ``T > 1`` softens overconfident models, ``T < 1``
sharpens timid ones (at most 2x); the class ranking of each row is unchanged. A floor set by the
number of out-of-fold rows (:func:`evidence_floor`) keeps every probability strictly inside
(0, 1): no class the data does not make certain gets p = 0 or 1.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from automl.metrics import get_metric

PROBABILITY_FLOOR = 1e-6
# Sharpening is bounded: on nearly separable data the out-of-fold rows show no mistake, and an
# unbounded fit would push probabilities towards 0/1 that one unseen mistake then punishes hard.
MIN_T, MAX_T = 0.5, 20.0
_LOG_LOSS = get_metric("log_loss")


def evidence_floor(rows: int, classes: int = 2) -> float:
    """The least probability a class gets after calibration, from how many out-of-fold rows were
    seen: with n rows and no mistake among them, a mistake rate r above about 1/(2(n+1)) is not
    supported by the data (a Krichevsky-Trofimov style estimate). A mistake puts the true class
    among the k - 1 others, and the floor f that minimises the expected log loss
    ``(1 - r)(k - 1)f - r log f`` is ``r / (k - 1)``: the floor shrinks with the class count, so
    ten sure classes do not pay nine times the price of two."""
    return max(PROBABILITY_FLOOR, 0.5 / ((rows + 1) * max(1, classes - 1)))


def scale(proba: np.ndarray, temperature: float, floor: float = PROBABILITY_FLOOR) -> np.ndarray:
    """Apply the temperature to a probability matrix, then keep every entry at least ``floor``
    (rows sum to 1, entries strictly inside (0, 1))."""
    logits = np.log(np.clip(np.asarray(proba, dtype=float), PROBABILITY_FLOOR, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    out /= out.sum(axis=1, keepdims=True)
    k = out.shape[1]
    floor = min(floor, 0.5 / k)
    result: np.ndarray = floor + (1.0 - k * floor) * out  # a mix with the uniform: sums stay 1
    return result


def fit_temperature(proba: np.ndarray, y: np.ndarray, floor: float = PROBABILITY_FLOOR) -> float:
    """The temperature minimising the log loss of ``proba`` (n, K) against class codes ``y``;
    1.0 when that does not beat the floored probabilities as they are."""
    y = np.asarray(y, dtype=int)
    if len(y) < 20 or proba.ndim != 2 or proba.shape[1] < 2:
        return 1.0
    result = minimize_scalar(
        lambda log_t: _LOG_LOSS.score(y, scale(proba, float(np.exp(log_t)), floor)),
        bounds=(np.log(MIN_T), np.log(MAX_T)),
        method="bounded",
        options={"xatol": 1e-3},
    )
    temperature = float(np.exp(result.x))
    if _LOG_LOSS.score(y, scale(proba, temperature, floor)) < _LOG_LOSS.score(y, scale(proba, 1.0, floor)):
        return temperature
    return 1.0
