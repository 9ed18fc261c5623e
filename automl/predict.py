"""Predicting with a registered version: check rows against its input schema, then answer.

Shared by ``automl predict`` and the HTTP server, so a row is accepted or refused the same way
everywhere. The rules, per column kind of the version's ``input_schema``:

========== ===================================================================================
numeric    a JSON number (not a boolean), or a string that parses as a finite number
           (``"3"``, ``"2.5"``, ``"1e3"``, as CSV cells arrive); ``""`` and ``"nan"`` count as
           missing
boolean    ``true``/``false``, the numbers ``0``/``1``, or one of the strings ``true``,
           ``false``, ``t``, ``f``, ``yes``, ``no``, ``y``, ``n``, ``1``, ``0`` (any case) --
           exactly the words the model's preprocessor reads
categorical any scalar (string, number, boolean); unseen categories are fine, the model handles
           them
datetime   an ISO 8601 string (``2024-05-01``, ``2024-05-01T12:30:00Z``)
========== ===================================================================================

``null`` is a missing value and is accepted in every column (the model imputes it); a column
*absent* from a row is an error, so a typo in a column name is not silently read as "missing".
Columns that are not in the schema are ignored and reported back as ``ignored_columns``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from automl.errors import ArtifactCorrupt, ArtifactMissing

if TYPE_CHECKING:
    import pandas as pd

    from automl.artifacts import ArtifactStore
    from automl.store.records import ModelVersionRecord

BOOLEAN_WORDS = frozenset({"true", "false", "t", "f", "yes", "no", "y", "n", "1", "0", "1.0", "0.0"})
KINDS = ("numeric", "categorical", "boolean", "datetime")


@dataclass(frozen=True)
class InputProblem:
    """One refused value: the row (0-based index into the records), the column, and why.

    ``type`` follows pydantic's error types (``missing``, ``float_parsing``, ``bool_type``, ...), so
    the HTTP API can answer in the same shape as FastAPI's own validation errors.
    """

    row: int
    column: str
    type: str
    message: str
    value: Any = None

    def to_fastapi(self) -> dict[str, Any]:
        """The problem as one entry of a FastAPI 422 ``detail`` list."""
        return {
            "type": self.type,
            "loc": ["body", "records", self.row, self.column],
            "msg": self.message,
            "input": self.value,
        }


def is_missing(value: Any) -> bool:
    """``None`` or a float NaN (how pandas hands over an empty CSV cell)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _check_numeric(column: str, value: Any) -> tuple[str, str] | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return "float_type", f"numeric column '{column}' needs a number or null, got {type(value).__name__} {value!r}"
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return "float_parsing", f"numeric column '{column}' needs a number or null, got the string {value!r}"
        if math.isinf(number):
            return "finite_number", f"numeric column '{column}' needs a finite number, got {value!r}"
        return None
    if isinstance(value, float) and math.isinf(value):
        return "finite_number", f"numeric column '{column}' needs a finite number, got {value!r}"
    return None


def _check_boolean(column: str, value: Any) -> tuple[str, str] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if value in (0, 1):
            return None
        return "bool_parsing", f"boolean column '{column}' needs true/false or 0/1, got {value!r}"
    if isinstance(value, str):
        if value.strip().lower() in BOOLEAN_WORDS:
            return None
        return "bool_parsing", f"boolean column '{column}' needs true/false, yes/no or 0/1, got the string {value!r}"
    return "bool_type", f"boolean column '{column}' needs true/false or 0/1, got {type(value).__name__} {value!r}"


def _check_categorical(column: str, value: Any) -> tuple[str, str] | None:
    if isinstance(value, str | int | float | bool):
        return None
    return (
        "scalar_type",
        f"categorical column '{column}' needs a string, number or boolean, got {type(value).__name__} {value!r}",
    )


def _check_datetime(column: str, value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str):
        return (
            "datetime_type",
            f"datetime column '{column}' needs an ISO 8601 string such as '2024-05-01T12:30:00Z', "
            f"got {type(value).__name__} {value!r}",
        )
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        return (
            "datetime_parsing",
            f"datetime column '{column}' needs an ISO 8601 string such as '2024-05-01T12:30:00Z', got {value!r}",
        )
    return None


_CHECKS = {
    "numeric": _check_numeric,
    "boolean": _check_boolean,
    "categorical": _check_categorical,
    "datetime": _check_datetime,
}


def schema_columns(input_schema: Sequence[dict[str, Any]]) -> list[str]:
    return [str(c["name"]) for c in input_schema]


def missing_columns(columns: Iterable[str], input_schema: Sequence[dict[str, Any]]) -> list[str]:
    """The schema's columns that ``columns`` lacks, in schema order."""
    present = set(columns)
    return [name for name in schema_columns(input_schema) if name not in present]


def ignored_columns(records: Sequence[dict[str, Any]], input_schema: Sequence[dict[str, Any]]) -> list[str]:
    """Columns present in some record that the model does not use, sorted."""
    known = set(schema_columns(input_schema))
    return sorted({str(key) for record in records for key in record} - known)


def validate_records(
    records: Sequence[dict[str, Any]], input_schema: Sequence[dict[str, Any]], *, limit: int | None = None
) -> list[InputProblem]:
    """Every problem with ``records`` against ``input_schema`` (see the module doc for the rules),
    row by row, in schema column order; at most ``limit`` of them when given. Empty when valid."""
    problems: list[InputProblem] = []
    kinds = [(str(c["name"]), str(c.get("kind", "categorical"))) for c in input_schema]
    for row, record in enumerate(records):
        for column, kind in kinds:
            if column not in record:
                problems.append(
                    InputProblem(
                        row, column, "missing", f"column '{column}' ({kind}) is required; send null if unknown"
                    )
                )
            else:
                value = native(record[column])  # numpy scalars, as a frame's rows carry them
                if is_missing(value):
                    continue
                found = _CHECKS.get(kind, _check_categorical)(column, value)
                if found is not None:
                    problems.append(InputProblem(row, column, found[0], found[1], value))
            if limit is not None and len(problems) >= limit:
                return problems
    return problems


def records_frame(records: Sequence[dict[str, Any]], input_schema: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The schema's columns of ``records`` as a frame (extra keys dropped), for the model."""
    import pandas as pd

    return pd.DataFrame(list(records), columns=schema_columns(input_schema))


def native(value: Any) -> Any:
    """A numpy scalar as the Python value JSON and CSV writers expect."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def predict_frame(model: Any, frame: pd.DataFrame, task: str, proba: bool) -> dict[str, Any]:
    """Predict ``frame`` (raw rows with the schema's columns) with a loaded model.

    Returns ``{"predictions": [...], "classes": [...] | None, "probabilities": [{label: p}] | None}``.
    For classifiers, ``classes`` are the original labels (``model.classes_``) and, with ``proba``,
    ``probabilities`` has one dict per row keyed by ``str(label)``; the prediction is the most
    probable class, exactly as the saved model's own ``predict`` decides it.
    """
    import numpy as np

    if task == "regression":
        values = np.asarray(model.predict(frame), dtype=float)
        return {"predictions": values.tolist(), "classes": None, "probabilities": None}
    classes = [native(c) for c in np.asarray(model.classes_).tolist()]
    if not proba:
        predictions = [native(p) for p in np.asarray(model.predict(frame)).tolist()]
        return {"predictions": predictions, "classes": classes, "probabilities": None}
    matrix = np.asarray(model.predict_proba(frame), dtype=float)
    keys = [str(c) for c in classes]
    return {
        # argmax over predict_proba is how the saved classifiers (DecodedClassifier) predict, so
        # one pass gives both answers.
        "predictions": [classes[i] for i in np.argmax(matrix, axis=1).tolist()],
        "classes": classes,
        "probabilities": [dict(zip(keys, row, strict=True)) for row in matrix.tolist()],
    }


def version_label(version: ModelVersionRecord) -> str:
    return f"{version.model_name} v{version.version} (version id {version.id})"


def load_version(artifacts: ArtifactStore, version: ModelVersionRecord) -> Any:
    """The version's estimator, checksum verified; a bad artifact's error names the version and path."""
    try:
        return artifacts.get_object(version.artifact_uri, version.artifact_sha256)
    except ArtifactMissing as exc:
        raise ArtifactMissing(f"{version_label(version)}: {exc.message}", hint=exc.hint) from None
    except ArtifactCorrupt as exc:
        raise ArtifactCorrupt(f"{version_label(version)}: {exc.message}", hint=exc.hint) from None


def single_threaded(model: Any) -> Any:
    """Set ``n_jobs = 1`` on every estimator inside ``model`` (ensemble members, pipeline steps,
    forests) and return it. The server answers many requests at once (``--workers``); a thread pool
    per request on top costs more than it gives for a few rows (an ensemble of five forests: ~200 ms
    a row with the fitted ``n_jobs=-1``, ~95 ms with 1). A process that forks trial children
    predicts on one thread too (:func:`automl.sandbox.openmp_single_threaded`). Predictions are
    the same, up to the last bit of a probability (the trees are summed in another order)."""
    from sklearn.base import BaseEstimator

    seen: set[int] = set()
    stack: list[Any] = [model]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, BaseEstimator):
            if getattr(obj, "n_jobs", None) not in (None, 1):
                obj.n_jobs = 1
            stack.extend(vars(obj).values())
        elif isinstance(obj, list | tuple):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
    return model
