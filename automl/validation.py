"""How rows are split: the job's holdout (by a stable hash of each row), and how trials are
validated on the rest: K-fold cross-validation, or one split when data is large for the budget.

The ``auto`` rule is FLAML's documented one (``eval_method="auto"``): K-fold while
``rows * columns / 0.9 < 10,000,000 * budget_hours`` and ``rows < 100,000``, else a holdout split
of a tenth of the training rows (at most :data:`HOLDOUT_MAX_VALID_ROWS`). K-fold costs K fits per
trial; on large data a single split gives K times as many trials for a small loss in the precision
of each score.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# FLAML's thresholds (flaml/automl/automl.py: SMALL_LARGE_THRES, CV_HOLDOUT_THRESHOLD, split ratio).
SMALL_LARGE_CELLS_PER_HOUR = 10_000_000
CV_MAX_ROWS = 100_000
HOLDOUT_VALIDATION_FRACTION = 0.1
# Under the holdout scheme a trial trains on at most this many cells (rows x feature columns) per
# second of the time budget, on a seeded sample of the training split; the final model is refit on
# every row. FLAML treats the sample size as a resource of the search for the same reason (its
# sample grows from 10k rows); a fixed ceiling from the budget keeps the trial count up on data far
# larger than the budget can cover: 540k rows x 9 columns at 60 s trains trials on 166,666 rows.
TRIAL_CELLS_PER_SECOND = 25_000
MIN_TRIAL_ROWS = 40_000
# The holdout scheme's validation split stops growing at this many rows. Beyond a few thousand rows
# more of them barely sharpen a score, while every trial pays to predict them: on 300,000 rows x 54
# columns and seven classes, LightGBM's default trial took as long to predict its 24,000
# validation rows as to train on its 40,000. AutoGluon grows its validation set "to a stable 2500
# examples" (5,000 when tuning; autogluon.core.utils.default_holdout_frac); this keeps twice that.
HOLDOUT_MAX_VALID_ROWS = 10_000


@dataclass(frozen=True)
class HoldoutSplit:
    """How the job's holdout was drawn: ``row-hash`` (rows whose key is below ``fraction``) or
    ``seeded`` (a seeded stratified split, when the hash split could not serve)."""

    rule: str
    fraction: float
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row_keys(frame: Any, id_column: str | None = None) -> np.ndarray:
    """A number in [0, 1) per row from a hash of its values (of ``id_column`` alone when given):
    the same row gets the same key in any data set and whatever the seed."""
    import pandas as pd

    columns = frame[[id_column]] if id_column else frame
    # Canonical values, so that the same row read from CSV or Parquet, with ints or floats, with
    # pandas' string dtype or plain objects, gets the same key: numbers as float64, the rest as text.
    canonical = pd.DataFrame(
        {
            str(name): (
                columns[name].astype("float64")
                if pd.api.types.is_numeric_dtype(columns[name].dtype)
                else columns[name].astype(object).where(columns[name].notna(), None).map(str).astype(object)
            )
            for name in columns.columns
        }
    )
    hashed = pd.util.hash_pandas_object(canonical, index=False).to_numpy(dtype=np.uint64)
    keys: np.ndarray = (hashed >> np.uint64(11)).astype(np.float64) / float(2**53)
    return keys


def usable_split(hold_mask: np.ndarray, y: np.ndarray | None) -> bool:
    """A hash split serves when both sides have rows and (for classes) every class has at least two
    training rows."""
    if hold_mask.all() or not hold_mask.any() or (~hold_mask).sum() < 10:
        return False
    if y is None:
        return True
    return bool(np.bincount(y[~hold_mask], minlength=int(y.max()) + 1).min() >= 2)


@dataclass(frozen=True)
class Validation:
    """The scheme a job's trials are scored with, and why (recorded on the job)."""

    scheme: str  # "cv" or "holdout"
    folds: int  # K for cv; 1 for holdout
    reason: str
    max_train_rows: int | None = None  # holdout: trials train on a sample of at most this many rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_validation(
    rows: int, columns: int, time_budget_s: float | None, requested: str = "auto", folds: int = 5
) -> Validation:
    """Pick ``cv`` or ``holdout`` for ``rows`` training rows and ``columns`` features."""
    if requested == "cv":
        return Validation("cv", folds, f"{folds}-fold cross-validation: cv.scheme is cv")
    if requested == "holdout":
        return Validation("holdout", 1, "one holdout split: cv.scheme is holdout")
    cells = rows * max(columns, 1) / 0.9
    if rows >= CV_MAX_ROWS:
        return _sampled(
            Validation("holdout", 1, f"one holdout split: {rows:,} training rows >= {CV_MAX_ROWS:,}"),
            rows, columns, time_budget_s,
        )  # fmt: skip
    if time_budget_s is None:
        return Validation("cv", folds, f"{folds}-fold cross-validation: {rows:,} rows and no time budget")
    allowed = SMALL_LARGE_CELLS_PER_HOUR * time_budget_s / 3600.0
    if cells < allowed:
        return Validation(
            "cv", folds, f"{folds}-fold cross-validation: {rows:,} rows x {columns} columns is small for "
            f"a {time_budget_s:g} s budget"
        )  # fmt: skip
    return _sampled(
        Validation(
            "holdout", 1, f"one holdout split: {rows:,} rows x {columns} columns is large for a {time_budget_s:g} s "
            f"budget (K-fold would leave K times fewer trials)"
        ),
        rows, columns, time_budget_s,
    )  # fmt: skip


def _sampled(validation: Validation, rows: int, columns: int, time_budget_s: float | None) -> Validation:
    """``validation`` with the trials' row ceiling (:data:`TRIAL_CELLS_PER_SECOND`) when the budget
    cannot cover every training row in each trial."""
    if time_budget_s is None:
        return validation
    train_rows = rows - holdout_valid_rows(rows)
    cap = max(MIN_TRIAL_ROWS, int(TRIAL_CELLS_PER_SECOND * time_budget_s / max(columns, 1)))
    if train_rows <= cap:
        return validation
    reason = f"{validation.reason}; trials train on {cap:,} of its {train_rows:,} rows, the final model on all"
    return Validation(validation.scheme, validation.folds, reason, cap)


def holdout_valid_rows(rows: int) -> int:
    """The validation rows of a holdout split of ``rows`` training rows: a tenth of them (FLAML's
    share, as :func:`sklearn.model_selection.train_test_split` rounds it), at most
    :data:`HOLDOUT_MAX_VALID_ROWS`."""
    return min(math.ceil(HOLDOUT_VALIDATION_FRACTION * rows), HOLDOUT_MAX_VALID_ROWS)


def make_folds(
    y: np.ndarray, validation: Validation, classification: bool, seed: int, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, valid) index pairs over the training rows: K folds, or one split.

    With ``groups`` (the rows' keys: a hash of the whole row, or of its id), rows with the same key
    share one fold: a duplicated row is never trained on and validated on at once, which would
    reward models that memorize (on titanic 12 % of the rows are copies of another)."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    if groups is not None and len(groups) != len(y):
        raise ValueError(f"make_folds: {len(groups)} group keys for {len(y)} rows; give one key per row")
    stratify = classification and np.bincount(y).min() >= max(validation.folds, 2)
    index = np.arange(len(y))
    assign = np.zeros(len(y), dtype=int)  # each row's validation fold
    if validation.scheme == "holdout":
        train, valid = train_test_split(
            index,
            test_size=holdout_valid_rows(len(y)),  # a count: the same split as the fraction it rounds
            random_state=seed,
            shuffle=True,
            stratify=y if stratify else None,
        )
        assign[train] = 1  # fold 0 is validated, 1 only trains
    else:
        splitter: Any = (
            StratifiedKFold(n_splits=validation.folds, shuffle=True, random_state=seed)
            if stratify
            else KFold(n_splits=validation.folds, shuffle=True, random_state=seed)
        )
        for k, (_, valid) in enumerate(splitter.split(np.zeros(len(y)), y)):
            assign[valid] = k
    if groups is not None:
        assign = same_fold_for_same_key(assign, groups)
    if validation.scheme == "holdout":
        train = index[assign != 0]
        if validation.max_train_rows is not None:
            train = sample_rows(train, y, validation.max_train_rows, seed, stratify)
        return [(train, index[assign == 0])]
    return [(index[assign != k], index[assign == k]) for k in range(validation.folds)]


def sample_rows(rows: np.ndarray, y: np.ndarray, size: int, seed: int, stratify: bool) -> np.ndarray:
    """``size`` of ``rows`` (all of them when there are no more), drawn with ``seed``, stratified by
    the class ``y`` when ``stratify`` and every class has rows enough; sorted."""
    if size >= len(rows):
        return rows
    from sklearn.model_selection import train_test_split

    try:
        picked, _ = train_test_split(rows, train_size=size, random_state=seed, stratify=y[rows] if stratify else None)
    except ValueError:  # a class too rare to stratify
        picked, _ = train_test_split(rows, train_size=size, random_state=seed)
    return np.sort(np.asarray(picked))


def same_fold_for_same_key(assign: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Move every row to the fold of the first row with its key (unique rows stay where they are)."""
    import pandas as pd

    first = pd.Series(assign).groupby(pd.Series(keys), sort=False).transform("first")
    return np.asarray(first.to_numpy(), dtype=int)


def validated_rows(folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The training rows that get an out-of-fold prediction (all of them under K-fold)."""
    return np.sort(np.concatenate([valid for _, valid in folds]))


def trained_rows(folds: list[tuple[np.ndarray, np.ndarray]]) -> int:
    """The rows a trial's fits train on, summed over its folds (at least 1)."""
    return max(sum(len(train) for train, _ in folds), 1)


def refit_scale(folds: list[tuple[np.ndarray, np.ndarray]], rows: int) -> float:
    """A refit on ``rows`` rows costs about this times a trial's summed fit time (K fits on the
    folds' training rows)."""
    return rows / trained_rows(folds)
