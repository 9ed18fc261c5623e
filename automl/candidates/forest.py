"""Forests that stop growing when their time is up, as boosted trees stop adding rounds.

A forest's cost grows with its trees, and a forest of fewer trees is still a whole model (the
trees are averaged, not summed): so rather than being killed at its deadline with nothing, a forest
given ``max_time_s`` grows its trees in steps (scikit-learn's ``warm_start``) and stops adding them
when the next step would not end in time. ``n_estimators`` stays the configured count (the cap);
``estimators_`` holds the trees grown. Without ``max_time_s`` it is the plain scikit-learn forest,
with the same trees: the steps draw their seeds from one random state, as a single fit does.
"""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor

from automl.candidates.growth import GrowsByTime

FIRST_TREES = 10  # a forest given a time cap starts with this many trees, then doubles them


class _TimeCapped(GrowsByTime):
    """The parameters of a forest with a time cap (mixed in before a scikit-learn forest, whose own
    parameters the job does not set keep scikit-learn's defaults). Its trees double while the time
    lasts: few refits of the warm forest, and none that would end past the cap."""

    size_param = "n_estimators"
    first_size = FIRST_TREES
    doubling = True

    def __init__(
        self,
        n_estimators: int = 100,
        *,
        max_features: Any = "sqrt",
        min_samples_leaf: int = 1,
        max_depth: int | None = None,
        random_state: int | None = None,
        n_jobs: int | None = None,
        max_time_s: float | None = None,
    ) -> None:
        super().__init__(  # type: ignore[call-arg]
            n_estimators=n_estimators, max_features=max_features, min_samples_leaf=min_samples_leaf,
            max_depth=max_depth, random_state=random_state, n_jobs=n_jobs,
        )  # fmt: skip
        self.max_time_s = max_time_s


class RandomForestClassifierCapped(_TimeCapped, RandomForestClassifier):  # type: ignore[misc]
    pass


class RandomForestRegressorCapped(_TimeCapped, RandomForestRegressor):  # type: ignore[misc]
    pass


class ExtraTreesClassifierCapped(_TimeCapped, ExtraTreesClassifier):  # type: ignore[misc]
    pass


class ExtraTreesRegressorCapped(_TimeCapped, ExtraTreesRegressor):  # type: ignore[misc]
    pass
