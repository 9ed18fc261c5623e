"""Greedy ensemble selection on synthetic out-of-fold predictions."""

from __future__ import annotations

import numpy as np

from automl.ensemble import blend, fold_scores, greedy_select
from automl.metrics import get_metric


def test_selection_prefers_complementary_members_over_a_duplicate() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    noise_a, noise_b = rng.normal(size=400), rng.normal(size=400)
    a = y + noise_a  # two models with independent errors: their average halves the variance
    b = y + noise_b
    bad = y + 3 * rng.normal(size=400)
    choice = greedy_select([a, a.copy(), b, bad], y, get_metric("rmse"), max_size=3)
    used = {0, 1} & set(choice.members)
    assert 2 in choice.members and used, choice
    weights = dict(zip(choice.members, choice.weights, strict=True))
    assert weights.get(3, 0.0) < 0.1  # a noisy model earns at most a small weight
    assert abs(sum(choice.weights) - 1.0) < 1e-9
    single = min(get_metric("rmse").score(y, p) for p in (a, b))
    assert choice.score < single


def test_max_size_bounds_distinct_members() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    preds = [y + rng.normal(size=300) for _ in range(8)]
    choice = greedy_select(preds, y, get_metric("rmse"), max_size=2)
    assert len(choice.members) <= 2


def test_blend_is_the_weighted_average_and_folds_score_it() -> None:
    y = np.array([0, 1, 0, 1])
    p1 = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]])
    p2 = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    mixed = blend([p1, p2], [0.75, 0.25])
    assert np.allclose(mixed, 0.75 * p1 + 0.25 * p2)
    folds = [(np.array([2, 3]), np.array([0, 1])), (np.array([0, 1]), np.array([2, 3]))]
    assert fold_scores(mixed, y, folds, get_metric("accuracy")) == [1.0, 1.0]
