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


def test_members_whose_final_fits_would_not_fit_in_the_time_left_are_not_chosen() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=400)
    preds = [y + rng.normal(size=400) for _ in range(4)]  # four equally good, independent models
    rmse = get_metric("rmse")
    free = greedy_select(preds, y, rmse, max_size=4)
    assert len(free.members) == 4  # averaging independent errors: every one of them helps
    costs = [1.0, 5.0, 1.0, 2.0]
    timed = greedy_select(preds, y, rmse, max_size=4, costs=costs, budget=4.0)
    assert sum(costs[i] for i in timed.members) <= 4.0
    assert 1 not in timed.members and len(timed.members) >= 2
    assert timed.score < min(rmse.score(y, p) for p in preds)  # still an ensemble that helps
    # The best single candidate is always allowed, whatever its cost.
    lone = greedy_select(preds, y, rmse, max_size=4, costs=[10.0] * 4, budget=1.0)
    assert len(lone.members) == 1


def test_blend_is_the_weighted_average_and_folds_score_it() -> None:
    y = np.array([0, 1, 0, 1])
    p1 = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]])
    p2 = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    mixed = blend([p1, p2], [0.75, 0.25])
    assert np.allclose(mixed, 0.75 * p1 + 0.25 * p2)
    folds = [(np.array([2, 3]), np.array([0, 1])), (np.array([0, 1]), np.array([2, 3]))]
    assert fold_scores(mixed, y, folds, get_metric("accuracy")) == [1.0, 1.0]
