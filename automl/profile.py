"""Dataset profiles: what each column is, how much is missing, and what looks wrong.

A profile is computed from a loaded frame and stored as JSON (on the dataset row, and with the
target analysis on the job row). Later steps read it to choose candidates and preprocessing, and
the serving layer reads it as the model's input schema.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

ColumnKind = Literal["numeric", "categorical", "boolean", "datetime", "text", "id", "constant"]
FEATURE_KINDS: tuple[ColumnKind, ...] = ("numeric", "categorical", "boolean", "datetime", "text")

_ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key)$|^index$", re.IGNORECASE)
_BOOL_WORDS = {"true", "false", "yes", "no", "t", "f", "y", "n"}


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    kind: ColumnKind
    dtype: str
    missing_fraction: float
    distinct: int
    summary: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # why the kind was chosen where it is not obvious


@dataclass(frozen=True)
class TargetProfile:
    name: str
    task: str  # binary, multiclass or regression
    classes: list[Any] | None
    class_counts: dict[str, int] | None
    summary: dict[str, float] | None


@dataclass(frozen=True)
class DatasetProfile:
    rows: int
    columns: list[ColumnProfile]
    warnings: list[str] = field(default_factory=list)
    target: TargetProfile | None = None
    leaks: list[str] = field(default_factory=list)

    def column(self, name: str) -> ColumnProfile:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetProfile:
        target = data.get("target")
        return cls(
            rows=int(data["rows"]),
            columns=[ColumnProfile(**c) for c in data["columns"]],
            warnings=list(data.get("warnings", [])),
            target=TargetProfile(**target) if target else None,
            leaks=list(data.get("leaks", [])),
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _looks_datetime(values: pd.Series) -> bool:
    sample = values.dropna().astype(str).head(200)
    if sample.empty or not sample.str.contains(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}").all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() > 0.95)


def profile_column(name: str, values: pd.Series) -> ColumnProfile:
    """Classify one column and summarise it."""
    rows = len(values)
    non_null = values.dropna()
    missing = 1.0 - len(non_null) / rows if rows else 0.0
    distinct = int(non_null.nunique())
    dtype = str(values.dtype)
    summary: dict[str, Any] = {}
    reason = None

    if distinct <= 1:
        kind: ColumnKind = "constant"
        reason = "all values missing" if distinct == 0 else "a single value"
    elif pd.api.types.is_bool_dtype(values) or (
        distinct == 2 and set(non_null.astype(str).str.lower().unique()) <= _BOOL_WORDS
    ):
        kind = "boolean"
    elif pd.api.types.is_numeric_dtype(values):
        integer = pd.api.types.is_integer_dtype(values)
        if integer and distinct == rows and rows >= 20 and (_ID_NAME.search(name) or non_null.is_monotonic_increasing):
            kind, reason = "id", "unique increasing integers"
        else:
            kind = "numeric"
    elif pd.api.types.is_datetime64_any_dtype(values) or _looks_datetime(values):
        kind = "datetime"
    else:
        text = non_null.astype(str)
        mean_len = float(text.str.len().mean())
        unique_ratio = distinct / max(len(non_null), 1)
        if mean_len >= 30 and text.str.contains(" ").mean() > 0.5:
            kind, reason = "text", f"free text (mean length {mean_len:.0f})"
        elif unique_ratio > 0.95 and len(non_null) >= 20:
            kind, reason = "id", f"{unique_ratio:.0%} of values unique"
        elif _ID_NAME.search(name) and unique_ratio > 0.5:
            kind, reason = "id", "named like an identifier"
        elif unique_ratio > 0.5 and distinct >= 50 and text.str.contains(" ").mean() > 0.5:
            kind, reason = "text", f"mostly unique multi-word values ({unique_ratio:.0%} unique)"
        else:
            kind = "categorical"

    if kind == "numeric":
        numbers = pd.to_numeric(non_null, errors="coerce").astype(float)
        q = numbers.quantile([0.25, 0.5, 0.75])
        summary = {
            "mean": float(numbers.mean()),
            "std": float(numbers.std()) if len(numbers) > 1 else 0.0,
            "min": float(numbers.min()),
            "p25": float(q.iloc[0]),
            "p50": float(q.iloc[1]),
            "p75": float(q.iloc[2]),
            "max": float(numbers.max()),
        }
    elif distinct:
        top = non_null.astype(str).value_counts().head(5)
        summary = {"top": [[str(k), int(v)] for k, v in top.items()]}
    return ColumnProfile(name, kind, dtype, round(missing, 6), distinct, summary, reason)


def profile_frame(frame: pd.DataFrame) -> DatasetProfile:
    """Profile every column of a frame (no target analysis)."""
    columns = [profile_column(str(name), frame[name]) for name in frame.columns]
    warnings = []
    for col in columns:
        if col.kind == "constant":
            warnings.append(f"column '{col.name}' is constant ({col.reason}); it will be dropped")
        elif col.kind == "id":
            warnings.append(f"column '{col.name}' looks like an identifier ({col.reason}); it will be dropped")
        if col.missing_fraction >= 0.5 and col.kind != "constant":
            warnings.append(f"column '{col.name}' is {col.missing_fraction:.0%} missing")
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_float_dtype(values.dtype):
            infinite = int(np.isinf(values.to_numpy(dtype="float64", na_value=np.nan)).sum())
            if infinite:
                warnings.append(f"column '{name}' has {infinite} infinite value(s); features take them as missing")
    if len(frame) < 50:
        warnings.append(f"only {len(frame)} rows: scores will be noisy")
    return DatasetProfile(rows=len(frame), columns=columns, warnings=warnings)


def resolve_task(target: pd.Series, requested: str) -> str:
    """Turn ``classification`` into ``binary``/``multiclass`` from the target's classes."""
    if requested == "regression":
        return "regression"
    classes = target.dropna().nunique()
    if requested == "classification":
        return "binary" if classes == 2 else "multiclass"
    return requested


def find_leaks(frame: pd.DataFrame, target: str, task: str) -> list[str]:
    """Columns that restate the target: a one-to-one mapping (classification) or |r| > 0.999."""
    y = frame[target]
    leaks = []
    for name in frame.columns:
        if name == target:
            continue
        x = frame[name]
        both = pd.DataFrame({"x": x, "y": y}).dropna()
        if len(both) < max(10, 0.9 * y.notna().sum()):
            continue
        if task == "regression":
            if pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
                xs, ys = both["x"].astype(float), both["y"].astype(float)
                if xs.std() > 0 and ys.std() > 0 and abs(float(np.corrcoef(xs, ys)[0, 1])) > 0.999:
                    leaks.append(str(name))
        else:
            pairs = both.astype(str).drop_duplicates()
            n_x, n_y = pairs["x"].nunique(), pairs["y"].nunique()
            if len(pairs) == n_x == n_y and n_y >= 2:
                leaks.append(str(name))
    return leaks


def profile_target(frame: pd.DataFrame, target: str, task: str) -> TargetProfile:
    y = frame[target].dropna()
    if task == "regression":
        numbers = y.astype(float)
        summary = {
            "mean": float(numbers.mean()),
            "std": float(numbers.std()),
            "min": float(numbers.min()),
            "max": float(numbers.max()),
        }
        return TargetProfile(target, task, None, None, summary)
    counts = y.value_counts().sort_index()
    classes = [_jsonable(c) for c in counts.index]
    return TargetProfile(target, task, classes, {str(k): int(v) for k, v in counts.items()}, None)


def with_target(profile: DatasetProfile, frame: pd.DataFrame, target: str, task: str) -> DatasetProfile:
    """Add the target analysis (summary, leak columns, imbalance) to a frame's profile."""
    tprof = profile_target(frame, target, task)
    leaks = find_leaks(frame, target, task)
    warnings = list(profile.warnings)
    for name in leaks:
        warnings.append(f"column '{name}' restates the target '{target}' (a leak); it will be dropped")
    if tprof.class_counts:
        smallest = min(tprof.class_counts.values())
        if smallest / max(sum(tprof.class_counts.values()), 1) < 0.05:
            warnings.append(f"class imbalance: the smallest class has {smallest} rows")
    missing = int(frame[target].isna().sum())
    if missing:
        warnings.append(f"{missing} rows have no target value; they are left out")
    return DatasetProfile(profile.rows, profile.columns, warnings, tprof, leaks)
