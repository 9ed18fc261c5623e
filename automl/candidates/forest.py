"""Forests that stop growing when their time is up, as boosted trees stop adding rounds.

A forest's cost grows with its trees, and a forest of fewer trees is still a whole model (the
trees are averaged, not summed): so rather than being killed at its deadline with nothing, a forest
given ``max_time_s`` grows its trees in steps (scikit-learn's ``warm_start``) and stops adding them
when the next step would not end in time. ``n_estimators`` stays the configured count (the cap);
``estimators_`` holds the trees grown. Without ``max_time_s`` it is the plain scikit-learn forest,
with the same trees: the steps draw their seeds from one random state, as a single fit does.

A forest's size is capped too. A deep tree holds a node for every few rows: on 43,000 rows of
diamonds, 200 extra trees pickle to 1.1 GB, 200 random-forest trees to 690 MB, and a model that size
is memory and load time wherever it serves. So a forest weighs its first trees and grows no more
trees than keep it under ``max_mb`` (:data:`FOREST_MAX_MB`), as AutoGluon's forests bound their
trees by the memory the first ones take. Small data never comes near it (a default forest on a few
thousand rows takes a few MB).
"""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor

from automl.artifacts import pickled_size
from automl.candidates.growth import GrowsByTime

FIRST_TREES = 10  # a capped forest (by time or size) starts with this many trees, then adds more
FOREST_MAX_MB = 200.0  # a forest grows no more trees than keep it under this (it keeps its first ones)


class _TimeCapped(GrowsByTime):
    """The parameters of a forest with a time cap and a size cap (mixed in before a scikit-learn
    forest, whose own parameters the job does not set keep scikit-learn's defaults). Its trees double
    while the time lasts: few refits of the warm forest, and none that would end past the cap."""

    size_param = "n_estimators"
    first_size = FIRST_TREES
    doubling = True
    max_mb: float | None = None  # what a forest pickled before the size cap reads as: uncapped

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
        max_mb: float | None = FOREST_MAX_MB,
    ) -> None:
        super().__init__(  # type: ignore[call-arg]
            n_estimators=n_estimators, max_features=max_features, min_samples_leaf=min_samples_leaf,
            max_depth=max_depth, random_state=random_state, n_jobs=n_jobs,
        )  # fmt: skip
        self.max_time_s = max_time_s
        self.max_mb = max_mb

    def _sizes_itself(self) -> bool:
        return self.max_mb is not None

    def _size_cap(self) -> int | None:
        """As many trees as the first ones say fit in ``max_mb`` (at least those): the trees are alike."""
        if self.max_mb is None:
            return None
        trees: list[Any] = self.estimators_  # type: ignore[attr-defined]
        per_tree = pickled_size(trees) / max(len(trees), 1)
        return max(len(trees), int(self.max_mb * 1e6 / max(per_tree, 1.0)))


class RandomForestClassifierCapped(_TimeCapped, RandomForestClassifier):  # type: ignore[misc]
    pass


class RandomForestRegressorCapped(_TimeCapped, RandomForestRegressor):  # type: ignore[misc]
    pass


class ExtraTreesClassifierCapped(_TimeCapped, ExtraTreesClassifier):  # type: ignore[misc]
    pass


class ExtraTreesRegressorCapped(_TimeCapped, ExtraTreesRegressor):  # type: ignore[misc]
    pass
