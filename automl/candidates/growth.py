"""Models that grow by time: a forest's trees, histogram boosting's iterations.

Such a model, given ``max_time_s``, fits a first few units, then adds more (scikit-learn's
``warm_start``) at the pace the first ones set while its time lasts, and keeps the units it has.
A model may also cap its size by what its units weigh (:meth:`GrowsByTime._size_cap`: a forest's
trees by their bytes); it then grows in steps even without ``max_time_s``. Without either cap it is
the plain scikit-learn estimator. The configured size stays the cap.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar


class GrowsByTime:
    """Mixed in before a scikit-learn estimator with ``warm_start``; subclasses name the size
    parameter, the first size, and whether the size at most doubles at each step."""

    size_param: ClassVar[str]
    first_size: ClassVar[int]
    doubling: ClassVar[bool]  # else the rest that fit go in one step
    max_time_s: float | None
    warm_start: bool

    def _grown(self) -> int:
        """How many units the last fit kept (fewer than asked for when it stopped early itself)."""
        return int(getattr(self, self.size_param))

    def _sizes_itself(self) -> bool:
        """Whether :meth:`_size_cap` may stop the model before its configured size."""
        return False

    def _size_cap(self) -> int | None:
        """The most units the model may hold, judged from its first units (None: no cap)."""
        return None

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        if self.max_time_s is None and not self._sizes_itself():
            return super().fit(X, y, sample_weight)  # type: ignore[misc]
        target, warm = getattr(self, self.size_param), self.warm_start
        began = time.monotonic()
        end = None if self.max_time_s is None else began + float(self.max_time_s)
        try:
            self.warm_start = False
            setattr(self, self.size_param, min(target, self.first_size))
            super().fit(X, y, sample_weight)  # type: ignore[misc]
            self.warm_start = True
            limit = min(target, self._size_cap() or target)  # the first units tell what one weighs
            while (size := getattr(self, self.size_param)) < target and self._grown() == size:
                step = limit - size
                if end is not None:  # at the pace the units so far set, and (doubling) few refits
                    per_unit = (time.monotonic() - began) / size
                    step = min(step, int((end - time.monotonic()) / per_unit))
                    if self.doubling:
                        step = min(step, size)
                if step < 1:
                    break
                setattr(self, self.size_param, size + step)
                super().fit(X, y, sample_weight)  # type: ignore[misc]
        finally:
            setattr(self, self.size_param, target)
            self.warm_start = warm
        return self
