"""Greedy ensemble selection with replacement (Caruana et al., 2004) over out-of-fold predictions.

Start from the best single model; at each round add (again, possibly) the member whose addition
most improves the ensemble's out-of-fold score; keep the best ensemble seen. Member counts become
the weights of a soft-voting ensemble.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from automl.metrics import Metric, is_better


@dataclass(frozen=True)
class EnsembleChoice:
    members: list[int]  # indices into the candidate list
    weights: list[float]  # same order, sum to 1
    score: float  # out-of-fold score of the weighted average


def _better_or_equal(metric: Metric, a: float, b: float) -> bool:
    return not is_better(metric, b, a)


def greedy_select(
    predictions: list[np.ndarray],
    y: np.ndarray,
    metric: Metric,
    max_size: int,
    rounds: int = 25,
    costs: list[float] | None = None,
    budget: float | None = None,
) -> EnsembleChoice:
    """Pick members and weights from ``predictions`` (one OOF array per candidate). With ``costs``
    (seconds to make each candidate's final fit) and a ``budget``, a new member is added only while
    the members' summed cost stays within the budget: an ensemble that cannot be refit in the time
    left is no use (the best single candidate is always allowed)."""
    if not predictions:
        raise ValueError("greedy_select needs at least one candidate")
    singles = [metric.score(y, p) for p in predictions]
    best = 0
    for i, s in enumerate(singles):
        if is_better(metric, s, singles[best]):
            best = i
    counts = np.zeros(len(predictions), dtype=int)
    counts[best] = 1
    total = predictions[best].astype(float).copy()
    best_counts, best_score = counts.copy(), singles[best]
    for _ in range(rounds):
        spent = sum(costs[i] for i in np.flatnonzero(counts)) if costs is not None else 0.0
        allowed = [
            i
            for i in range(len(predictions))
            if counts[i] > 0
            or (np.count_nonzero(counts) < max_size and (costs is None or budget is None or spent + costs[i] <= budget))
        ]
        n = counts.sum() + 1
        scores = [(metric.score(y, (total + predictions[i]) / n), i) for i in allowed]
        round_best_score, round_best = scores[0]
        for s, i in scores[1:]:
            if is_better(metric, s, round_best_score):
                round_best_score, round_best = s, i
        counts[round_best] += 1
        total += predictions[round_best]
        if is_better(metric, round_best_score, best_score):
            best_counts, best_score = counts.copy(), round_best_score
    members = [int(i) for i in np.flatnonzero(best_counts)]
    weights = [float(best_counts[i] / best_counts.sum()) for i in members]
    return EnsembleChoice(members, weights, float(best_score))


def blend(predictions: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """The weighted average the voting ensemble computes (soft voting / averaged regression)."""
    return np.average(np.stack(predictions), axis=0, weights=weights)


def fold_scores(
    prediction: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], metric: Metric
) -> list[float]:
    """Per-fold scores of an out-of-fold prediction (comparable with a trial's CV score)."""
    return [metric.score(y[valid], prediction[valid]) for _, valid in folds]
