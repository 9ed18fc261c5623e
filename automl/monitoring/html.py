"""The HTML drift report of a monitor run: the verdict, and per feature the reference and
current distributions side by side (one self-contained file, figures embedded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl.monitoring.drift import aligned_frequencies
from automl.monitoring.monitor import PREDICTION, MonitorResult
from automl.monitoring.reference import category_values, drift_kind, number_key, numeric_values
from automl.report.figures import Plot, new_figure, png, short_text

MAX_CATEGORIES_SHOWN = 15


def _frequencies(ref: dict[str, Any], values: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """Bin labels and the reference's and current rows' share in each bin."""
    kind = str(ref["kind"])
    if drift_kind(kind) == "numeric" and "frequencies" not in ref:
        if "bin_edges" not in ref:
            return None
        numbers = numeric_values(values, kind)
        present = numbers[np.isfinite(numbers)]
        edges = np.asarray(ref["bin_edges"], dtype=float)
        counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
        bounds = [ref["min"], *edges.tolist(), ref["max"]]
        labels = [f"{bounds[i]:.4g}–{bounds[i + 1]:.4g}" for i in range(len(bounds) - 1)]
        return labels, np.asarray(ref["bin_frequencies"]), counts / max(counts.sum(), 1)
    if "frequencies" not in ref:
        return None
    if drift_kind(kind) == "numeric":
        numbers = numeric_values(values, kind)
        labels_series = pd.Series([number_key(v) for v in numbers[np.isfinite(numbers)]], dtype=object)
    else:
        labels_series = category_values(values).dropna()
    names, expected, actual = aligned_frequencies(ref["frequencies"], labels_series)
    actual = actual / max(actual.sum(), 1.0)
    order = np.argsort(-(expected + actual))[:MAX_CATEGORIES_SHOWN]
    return [names[i] for i in order], expected[order], actual[order]


def _figure(name: str, ref: dict[str, Any], values: pd.Series) -> Plot | None:
    found = _frequencies(ref, values)
    if found is None:
        return None
    labels, expected, actual = found
    fig, (ax,) = new_figure(6.4, 0.8 + 0.28 * len(labels))
    positions = np.arange(len(labels))[::-1]
    ax.barh(positions + 0.2, expected, height=0.4, color="#4c72b0", label="reference (training rows)")
    ax.barh(positions - 0.2, actual, height=0.4, color="#dd8452", label="current rows")
    ax.set_yticks(positions, [short_text(label) for label in labels])
    ax.set_xlabel("share of rows")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    alt = f"{name}: share of reference and current rows per " + (
        "bin" if drift_kind(str(ref["kind"])) == "numeric" else "value"
    )
    return png(fig, alt)


def build_drift_report(result: MonitorResult) -> str:
    from automl.report import templates

    reference = result.frames["reference"]
    current = result.frames["current"]
    summary = result.to_dict()
    sections = []
    for feature in summary["features"]:
        ref = reference["features"][feature["name"]]
        sections.append({"drift": feature, "plot": _figure(feature["name"], ref, current[feature["name"]])})
    if result.prediction is not None:
        plot = _figure(PREDICTION, reference["prediction"], result.frames["predictions"])
        sections.append({"drift": summary["prediction_drift"], "plot": plot})
    return str(templates().get_template("drift.html.j2").render(result=summary, sections=sections))


def write_drift_report(result: MonitorResult, path: Path) -> Path:
    """Write the report of ``result`` to ``path`` (atomically); returns the absolute path."""
    from automl.report import write_html

    return write_html(path, build_drift_report(result))
