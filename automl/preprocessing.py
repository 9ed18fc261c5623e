"""Which columns a model uses, and the preprocessing that turns raw rows into a numeric matrix.

The preprocessor is the first step of every saved model, so a model takes raw rows exactly as a
CSV file or a JSON request gives them: numbers as strings, unseen categories, missing values and
extra columns are all handled here rather than by callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from automl.errors import DatasetInvalid
from automl.profile import DatasetProfile

Style = Literal["scaled", "tree", "native"]
MODELLED_KINDS = ("numeric", "categorical", "boolean", "datetime")
DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour")
# HistGradientBoosting bins a native categorical into at most 255 bins (one kept for missing).
NATIVE_MAX_CATEGORIES = 250
MISSING_CATEGORY = "__missing__"

_BOOL_VALUES = {
    **dict.fromkeys(("true", "t", "yes", "y", "1", "1.0"), 1.0),
    **dict.fromkeys(("false", "f", "no", "n", "0", "0.0"), 0.0),
}


def _as_float(values: pd.Series) -> np.ndarray:
    """Numbers as float64; text that is not a number, and infinities, become missing (imputed)."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        out = values.to_numpy(dtype="float64", na_value=np.nan, copy=True)  # already numbers: no parsing
    else:
        out = np.array(pd.to_numeric(values, errors="coerce"), dtype="float64")
    out[np.isinf(out)] = np.nan
    return out


def _as_bool(values: pd.Series) -> np.ndarray:
    words = values.astype(object).astype(str).str.strip().str.lower()
    return np.asarray(words.map(_BOOL_VALUES), dtype="float64")


def _as_category(values: pd.Series) -> np.ndarray:
    raw = values.to_numpy(dtype=object)
    missing = pd.isna(raw)
    out = raw.astype(str).astype(object)
    out[missing] = np.nan
    return out


def _datetime_parts(values: pd.Series) -> dict[str, np.ndarray]:
    # utc=True so mixed offsets parse instead of raising; naive stamps are read as UTC.
    stamps = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
    dt = pd.Series(stamps).dt
    parts = {
        "year": dt.year,
        "month": dt.month,
        "day": dt.day,
        "dayofweek": dt.day_of_week,
        "hour": dt.hour,
    }
    return {name: np.asarray(part, dtype="float64") for name, part in parts.items()}


def _output_columns(schema: tuple[tuple[str, str], ...]) -> list[str]:
    names: list[str] = []
    for name, kind in schema:
        if kind == "datetime":
            names += [f"{name}__{part}" for part in DATETIME_PARTS]
        else:
            names.append(name)
    return names


class FrameAdapter(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Coerce raw rows into a frame with fixed columns and dtypes, one per modelled feature.

    ``schema`` is ``((column, kind), ...)`` with kind numeric, categorical, boolean or datetime.
    Numeric and boolean columns become float64, categoricals become object-dtype strings with
    ``np.nan`` for missing, and each datetime becomes float columns ``<name>__year``, ``__month``,
    ``__day``, ``__dayofweek`` and ``__hour``. Extra input columns are ignored; a missing required
    column raises ``ValueError`` naming every missing column.
    """

    def __init__(self, schema: tuple[tuple[str, str], ...] = ()) -> None:
        self.schema = schema

    def fit(self, X: pd.DataFrame, y: Any = None) -> FrameAdapter:
        """Check the schema against ``X`` and record the output column names."""
        bad = [f"'{name}' ({kind})" for name, kind in self.schema if kind not in MODELLED_KINDS]
        if bad:
            raise ValueError(
                f"The 'schema' parameter must use kinds {', '.join(MODELLED_KINDS)}. Got {', '.join(bad)} instead."
            )
        self._require_columns(self._frame(X))
        self.feature_names_out_ = np.asarray(_output_columns(self.schema), dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return a new frame with the fitted columns and dtypes, in a fixed order."""
        check_is_fitted(self, "feature_names_out_")
        frame = self._frame(X)
        self._require_columns(frame)
        if all(kind == "numeric" for _, kind in self.schema):  # the common case: one float block
            block = np.column_stack([_as_float(frame[name]) for name, _ in self.schema]) if self.schema else None
            names = [name for name, _ in self.schema]
            return pd.DataFrame(block, columns=names, index=frame.index, dtype="float64")
        columns: dict[str, pd.Series] = {}
        for name, kind in self.schema:
            values = frame[name]
            if kind == "datetime":
                for part, array in _datetime_parts(values).items():
                    columns[f"{name}__{part}"] = pd.Series(array, index=frame.index, dtype="float64")
            elif kind == "categorical":
                # Explicit object dtype: pandas 3 would infer its `str` dtype, which sklearn's
                # encoders and imputers do not treat as a plain column of Python strings.
                columns[name] = pd.Series(_as_category(values), index=frame.index, dtype=object)
            elif kind == "boolean":
                columns[name] = pd.Series(_as_bool(values), index=frame.index, dtype="float64")
            else:
                columns[name] = pd.Series(_as_float(values), index=frame.index, dtype="float64")
        return pd.DataFrame(columns, index=frame.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns, datetime parts included."""
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)

    @staticmethod
    def _frame(X: Any) -> pd.DataFrame:
        # JSON records (a list of dicts) are accepted as well as frames.
        return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)

    def _require_columns(self, frame: pd.DataFrame) -> None:
        present = {str(c) for c in frame.columns}
        missing = [name for name, _ in self.schema if name not in present]
        if missing:
            raise ValueError(f"Missing required column(s): {', '.join(repr(m) for m in missing)}.")


@dataclass(frozen=True)
class FeaturePlan:
    """The modelled features ``((column, kind), ...)`` and every other column with why it was dropped."""

    features: tuple[tuple[str, str], ...]
    dropped: dict[str, str] = field(default_factory=dict)

    def columns(self, *kinds: str) -> list[str]:
        """Feature names of the given kinds, in plan order."""
        return [name for name, kind in self.features if kind in kinds]


def plan_features(
    profile: DatasetProfile, target: str, drop: list[str], leaks: list[str], id_column: str | None
) -> FeaturePlan:
    """Decide which profiled columns become features, recording a reason for every dropped one.

    Spec-named columns (``drop``, ``id_column``) must exist in the dataset: a typo there would
    otherwise silently keep a column the user meant to remove.
    """
    names = {c.name for c in profile.columns}
    unknown = [n for n in [target, *drop, *([id_column] if id_column else [])] if n not in names]
    if unknown:
        raise DatasetInvalid(
            f"Column(s) {', '.join(repr(u) for u in unknown)} named in the spec are not in the dataset.",
            hint=f"use column names from the dataset: {', '.join(sorted(names))}",
        )
    features: list[tuple[str, str]] = []
    dropped: dict[str, str] = {}
    for col in profile.columns:
        if col.name == target:
            continue
        if col.name in drop:
            dropped[col.name] = "dropped by the spec"
        elif col.name == id_column:
            dropped[col.name] = "id column"
        elif col.name in leaks:
            dropped[col.name] = "restates the target"
        elif col.kind == "constant":
            dropped[col.name] = f"constant: {col.reason or 'a single value'}"
        elif col.kind == "id":
            dropped[col.name] = f"identifier: {col.reason or 'looks like an identifier'}"
        elif col.kind == "text":
            dropped[col.name] = "free text is not modelled"
        else:
            features.append((col.name, col.kind))
    return FeaturePlan(tuple(features), dropped)


def _numeric_columns(plan: FeaturePlan) -> list[str]:
    numeric = tuple((name, kind) for name, kind in plan.features if kind != "categorical")
    return _output_columns(numeric)


def build_preprocessor(plan: FeaturePlan, profile: DatasetProfile, style: Style) -> Pipeline:
    """Adapter + ColumnTransformer producing a dense float matrix for one preprocessing style.

    Output columns are the numeric block (numeric, boolean and datetime-part columns, plus missing
    indicators) followed by the categorical block. ``native`` passes numeric columns through with
    their NaNs, because HistGradientBoosting handles missing values itself and a fixed column count
    lets :func:`native_categorical_mask` be known before fitting.
    """
    if not plan.features:
        raise DatasetInvalid(
            "No feature columns are left to model.",
            hint="check the dropped columns in the dataset profile, or drop fewer columns in the spec",
        )
    numeric = _numeric_columns(plan)
    categorical = plan.columns("categorical")
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        if style == "native":
            transformers.append(("numeric", "passthrough", numeric))
        else:
            # keep_empty_features: a CV fold where a column is all missing must not change the width.
            impute = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
            steps = make_pipeline(impute, StandardScaler()) if style == "scaled" else impute
            transformers.append(("numeric", steps, numeric))
    if categorical:
        if style == "scaled":
            encoder: Any = make_pipeline(
                SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY, keep_empty_features=True),
                OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=30, sparse_output=False),
            )
        else:
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
        transformers.append(("categorical", encoder, categorical))
    columns = ColumnTransformer(transformers, sparse_threshold=0, verbose_feature_names_out=False)
    return Pipeline([("adapt", FrameAdapter(plan.features)), ("columns", columns)])


def native_categorical_mask(plan: FeaturePlan, profile: DatasetProfile) -> list[bool] | None:
    """Mask over the ``native`` preprocessor's output marking categoricals HistGradientBoosting can bin.

    ``None`` when the plan has no categorical feature. A categorical with more than 250 distinct
    values is left as an ordinal number (False) because it would not fit in the category bins.
    """
    categorical = plan.columns("categorical")
    if not categorical:
        return None
    flags = [profile.column(name).distinct <= NATIVE_MAX_CATEGORIES for name in categorical]
    return [False] * len(_numeric_columns(plan)) + flags
