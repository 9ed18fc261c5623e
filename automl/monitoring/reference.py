"""The training reference of a model version: what monitoring compares new rows against.

Per input feature a compact summary of the training rows (numeric: 101 quantiles, decile bins,
range, mean and spread; categorical: frequencies of the known categories), the missing rate, and
the distribution of the model's predictions on the holdout. A few kilobytes per feature, stored as
JSON beside the version. An outlier model (an isolation forest on the training rows, Liu et al.
2008) is kept as an artifact: it marks rows that look unlike anything the model learned from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

REFERENCE_FORMAT = 1
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 101)
PSI_BINS = 10
MAX_CATEGORIES = 1000  # beyond this a feature's unseen categories are not tracked
DISCRETE_MAX = 20  # a numeric feature with at most this many values is compared by frequencies
OUTLIER_SAMPLE = 5_000
OUTLIER_RATE = 0.01  # the share of training rows the outlier model marks as unusual


def numeric_values(values: pd.Series, kind: str) -> np.ndarray:
    """A feature as floats (NaN for missing); datetimes as seconds since 1970."""
    if kind == "datetime":
        stamps = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
        seconds = np.asarray(pd.Series(stamps).astype("int64"), dtype="float64") / 1e9
        seconds[np.asarray(pd.isna(stamps))] = np.nan
        return seconds
    if kind == "boolean":
        return np.asarray(values.map(_boolean), dtype="float64")
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype="float64")


def _boolean(value: Any) -> float:
    if isinstance(value, str):
        text = value.strip().lower()
        return 1.0 if text in ("true", "1", "yes") else 0.0 if text in ("false", "0", "no") else np.nan
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    return float(bool(value))


def category_values(values: pd.Series) -> pd.Series:
    """A feature as strings (missing stays missing), the form categories are counted in."""
    return pd.Series([None if _missing(v) else str(v) for v in values.tolist()], index=values.index, dtype=object)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or other container: present
        return False


def drift_kind(kind: str) -> str:
    """How a feature's drift is measured: by its distribution (numeric) or frequencies (categorical)."""
    return "categorical" if kind in ("categorical", "boolean") else "numeric"


def _finite(values: np.ndarray) -> np.ndarray:
    return np.asarray(values[np.isfinite(values)])


def numeric_reference(values: np.ndarray) -> dict[str, Any]:
    present = _finite(values)
    missing = 1.0 - len(present) / max(len(values), 1)
    if len(present) == 0:
        return {"count": 0, "missing_rate": missing}
    quantiles = np.quantile(present, QUANTILE_LEVELS)
    edges = np.unique(np.quantile(present, np.linspace(0, 1, PSI_BINS + 1))[1:-1])
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    ref: dict[str, Any] = {
        "count": len(present),
        "missing_rate": missing,
        "min": float(present.min()),
        "max": float(present.max()),
        "mean": float(present.mean()),
        "std": float(present.std()),
        "quantiles": [float(q) for q in quantiles],
        "bin_edges": [float(e) for e in edges],
        "bin_frequencies": (counts / counts.sum()).tolist(),
    }
    distinct = np.unique(present)
    if len(distinct) <= DISCRETE_MAX:  # few values: compared by frequencies, like categories
        ref["frequencies"] = {number_key(v): float(np.mean(present == v)) for v in distinct}
    return ref


def number_key(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def categorical_reference(values: pd.Series) -> dict[str, Any]:
    present = values.dropna()
    missing = 1.0 - len(present) / max(len(values), 1)
    counts = present.value_counts()
    ref: dict[str, Any] = {"count": len(present), "missing_rate": missing}
    if len(present):
        kept = counts.iloc[:MAX_CATEGORIES]
        ref["frequencies"] = {str(k): float(v) / len(present) for k, v in kept.items()}
        ref["complete"] = len(counts) <= MAX_CATEGORIES  # every category seen in training is listed
    return ref


def feature_reference(values: pd.Series, kind: str) -> dict[str, Any]:
    ref = (
        categorical_reference(category_values(values))
        if drift_kind(kind) == "categorical"
        else numeric_reference(numeric_values(values, kind))
    )
    return {"kind": kind, **ref}


def prediction_reference(predictions: np.ndarray, task: str, classes: list[Any] | None) -> dict[str, Any]:
    """The holdout's predictions: class frequencies (classification) or their distribution."""
    if task == "regression":
        return {"kind": "numeric", **numeric_reference(np.asarray(predictions, dtype=float))}
    labels = pd.Series([str(c) for c in predicted_labels(predictions, classes)], dtype=object)
    return {"kind": "categorical", **categorical_reference(labels)}


def predicted_labels(predictions: np.ndarray, classes: list[Any] | None) -> list[Any]:
    """Labels from class probabilities (argmax), or the labels themselves."""
    array = np.asarray(predictions)
    if array.ndim == 2 and classes is not None:
        return [classes[i] for i in np.argmax(array, axis=1)]
    return list(array.tolist())


def build_reference(
    frame: pd.DataFrame,
    schema: list[dict[str, Any]],
    predictions: np.ndarray | None,
    task: str,
    classes: list[Any] | None,
) -> dict[str, Any]:
    """The reference of a version trained on ``frame`` (its input columns, raw)."""
    features = {col["name"]: feature_reference(frame[col["name"]], col["kind"]) for col in schema}
    reference: dict[str, Any] = {"format": REFERENCE_FORMAT, "rows": len(frame), "features": features}
    if predictions is not None:
        reference["prediction"] = prediction_reference(predictions, task, classes)
    return reference


def fit_outlier_model(frame: pd.DataFrame, schema: list[dict[str, Any]], seed: int) -> Any:
    """An isolation forest over the version's inputs, with its threshold set so that
    ``OUTLIER_RATE`` of the training rows fall below it (``threshold_``)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import IsolationForest
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    from automl.preprocessing import FrameAdapter

    kinds = tuple((col["name"], col["kind"]) for col in schema)
    adapter = FrameAdapter(kinds)
    sample = frame.sample(n=min(len(frame), OUTLIER_SAMPLE), random_state=seed) if len(frame) else frame
    adapted = adapter.fit_transform(sample)
    categorical = [name for name, kind in kinds if kind == "categorical"]
    numeric = [c for c in adapted.columns if c not in categorical]
    encode = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median", keep_empty_features=True), numeric),
            (
                "categorical",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2),
                categorical,
            ),
        ]
    )
    model = Pipeline(
        [
            ("adapt", adapter),
            ("encode", encode),
            ("forest", IsolationForest(n_estimators=100, max_samples=256, random_state=seed, n_jobs=1)),
        ]
    )
    model.fit(sample)
    scores = model.score_samples(sample)
    model.threshold_ = float(np.quantile(scores, OUTLIER_RATE))
    return model
