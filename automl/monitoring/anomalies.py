"""Anomalies in what a model is asked: values outside the training range, categories it never saw,
jumps in the missing rate, and rows the version's outlier model marks as unusual. Counts, rates
and a few examples each, so a user can find the rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from automl.monitoring.reference import OUTLIER_RATE, category_values, drift_kind, numeric_values
from automl.predict import native

EXAMPLES = 5
MISSING_JUMP = 0.1  # a feature's missing rate this much above training's is reported


def _examples(values: pd.Series, mask: np.ndarray, row_ids: list[Any]) -> list[dict[str, Any]]:
    picked = np.flatnonzero(mask)[:EXAMPLES]
    return [{"row": row_ids[i], "value": native(values.iloc[i])} for i in picked]


def feature_anomalies(
    frame: pd.DataFrame, reference: dict[str, Any], row_ids: list[Any]
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Per feature: out-of-range values, unseen categories, missing-rate jumps. Also the mask of
    rows with any out-of-range value or unseen category."""
    found: list[dict[str, Any]] = []
    flagged = np.zeros(len(frame), dtype=bool)
    for name, ref in reference["features"].items():
        if name not in frame.columns:
            continue
        values = frame[name]
        kind = str(ref["kind"])
        missing = float(values.isna().mean()) if len(values) else 0.0
        if missing - float(ref.get("missing_rate", 0.0)) >= MISSING_JUMP:
            found.append(
                {
                    "feature": name,
                    "type": "missing_rate_jump",
                    "count": int(values.isna().sum()),
                    "rate": missing,
                    "reference_rate": ref.get("missing_rate", 0.0),
                    "examples": [],
                }
            )
        if drift_kind(kind) == "numeric" and "min" in ref:
            numbers = numeric_values(values, kind)
            with np.errstate(invalid="ignore"):
                mask = (numbers < ref["min"]) | (numbers > ref["max"])
            if mask.any():
                flagged |= mask
                found.append(
                    {
                        "feature": name,
                        "type": "out_of_range",
                        "count": int(mask.sum()),
                        "rate": float(mask.mean()),
                        "range": [ref["min"], ref["max"]],
                        "examples": _examples(values, mask, row_ids),
                    }
                )
        elif drift_kind(kind) == "categorical" and ref.get("complete") and "frequencies" in ref:
            labels = category_values(values)
            known = set(ref["frequencies"])
            mask = np.asarray([v is not None and v not in known for v in labels], dtype=bool)
            if mask.any():
                flagged |= mask
                unseen = sorted({str(v) for v in labels[mask]})
                found.append(
                    {
                        "feature": name,
                        "type": "unseen_category",
                        "count": int(mask.sum()),
                        "rate": float(mask.mean()),
                        "categories": unseen[:20],
                        "examples": _examples(values, mask, row_ids),
                    }
                )
    return found, flagged


def outlier_rows(model: Any, frame: pd.DataFrame, row_ids: list[Any]) -> dict[str, Any]:
    """Rows the outlier model scores below its training threshold (about 1 % of training rows)."""
    scores = np.asarray(model.score_samples(frame), dtype=float)
    mask = scores < float(model.threshold_)
    order = np.argsort(scores)[: min(EXAMPLES, int(mask.sum()))]
    return {
        "type": "outlier",
        "count": int(mask.sum()),
        "rate": float(mask.mean()) if len(mask) else 0.0,
        "expected_rate": OUTLIER_RATE,
        "examples": [{"row": row_ids[i], "score": float(scores[i])} for i in order],
        "mask": mask,
    }
