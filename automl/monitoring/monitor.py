"""One monitor run: new rows of a model version against its training reference.

Drift per feature and of the predictions, anomalies, the live metric when true labels are known,
and the verdict; every run is stored (``monitor_runs``, ``monitor_features``, the
``model_health`` view).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from automl.artifacts import ArtifactStore
from automl.errors import InputError
from automl.monitoring.anomalies import feature_anomalies, outlier_rows
from automl.monitoring.drift import DriftOptions, FeatureDrift, feature_drift
from automl.monitoring.reference import build_reference, fit_outlier_model
from automl.sandbox import openmp_single_threaded
from automl.store.base import Store
from automl.store.records import (
    ModelVersionRecord,
    MonitorRunRecord,
    NewMonitorFeature,
    NewMonitorRun,
    ReferenceRecord,
)

PREDICTION = "(prediction)"


@dataclass
class MonitorResult:
    version: ModelVersionRecord
    source: str
    source_detail: str | None
    rows: int
    features: list[FeatureDrift]
    drift_share: float
    dataset_drift: bool
    prediction: FeatureDrift | None
    anomalies: list[dict[str, Any]]
    anomaly_rows: int
    outliers: dict[str, Any] | None
    live: dict[str, Any] | None
    seconds: float
    run: MonitorRunRecord | None = None
    frames: dict[str, Any] = field(default_factory=dict, repr=False)  # for the HTML report

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON values (NaN and infinities as null)."""
        v = self.version
        plain: dict[str, Any] = _json_safe(
            {
                "model": v.model_name,
                "version": v.version,
                "version_id": v.id,
                "monitor_run_id": self.run.id if self.run else None,
                "source": self.source,
                "source_detail": self.source_detail,
                "rows": self.rows,
                "dataset_drift": self.dataset_drift,
                "drifted_features": len(self.drifted),
                "drift_share": self.drift_share,
                "features": [f.to_dict() for f in self.features],
                "prediction_drift": self.prediction.to_dict() if self.prediction else None,
                "anomalies": {
                    "rows": self.anomaly_rows,
                    "features": self.anomalies,
                    "outliers": {k: v for k, v in (self.outliers or {}).items() if k != "mask"} or None,
                },
                "live": self.live,
                "seconds": round(self.seconds, 3),
            }
        )
        return plain


def options_from_spec(spec: dict[str, Any] | None) -> tuple[DriftOptions, float]:
    """Drift options and dataset drift share from a job spec's optional ``monitor`` block."""
    block = (spec or {}).get("monitor") or {}
    options = DriftOptions(
        numeric_test=block.get("numeric_test", "auto"),
        categorical_test=block.get("categorical_test", "auto"),
        threshold=block.get("threshold"),
    )
    return options, float(block.get("drift_share", 0.5))


# -- the reference ------------------------------------------------------------------------------
def store_reference(
    store: Store,
    artifacts: ArtifactStore,
    version: ModelVersionRecord,
    frame: pd.DataFrame,
    holdout_predictions: np.ndarray | None,
    classes: list[Any] | None,
    seed: int,
) -> ReferenceRecord:
    """Compute and store the reference of ``version`` trained on ``frame`` (raw input columns)."""
    reference = build_reference(frame, version.input_schema, holdout_predictions, version.task, classes)
    outlier_key = f"models/{version.model_name}/job-{version.job_id}/outliers.joblib"
    sha = artifacts.put_object(outlier_key, fit_outlier_model(frame, version.input_schema, seed))
    return store.put_reference(version.id, reference, outlier_key, sha)


def ensure_reference(store: Store, artifacts: ArtifactStore, version: ModelVersionRecord) -> ReferenceRecord:
    """The version's reference; for a version registered before references existed, computed
    now from its job's training rows and holdout (and stored)."""
    found = store.get_reference(version.id)
    if found is not None:
        return found
    from automl.context import load_context, load_evaluation_model
    from automl.predict import single_threaded

    ctx = load_context(store, artifacts, version.job_id)
    data = ctx.data
    with openmp_single_threaded():
        model = single_threaded(load_evaluation_model(store, artifacts, version.id))
        if version.task == "regression":
            predictions = np.asarray(model.predict(data.X_holdout), dtype=float)
        else:
            predictions = np.asarray(model.predict_proba(data.X_holdout), dtype=float)
    classes = None if version.task == "regression" else np.asarray(model.classes_).tolist()
    return store_reference(store, artifacts, version, data.X, predictions, classes, ctx.spec.seed)


# -- the run ------------------------------------------------------------------------------------
def _live_metric(
    version: ModelVersionRecord, model: Any, labels: pd.Series, outputs: np.ndarray
) -> dict[str, Any] | None:
    """The version's metric on rows whose true label is known, beside its holdout score."""
    from automl.metrics import get_metric

    known = labels.notna().to_numpy()
    if not known.any():
        return None
    metric = get_metric(version.metric)
    if version.task == "regression":
        y = pd.to_numeric(labels[known], errors="coerce").to_numpy(dtype=float)
        pred = outputs[known]
        ok = np.isfinite(y)
        y, pred = y[ok], pred[ok]
        unknown = 0
    else:
        classes = [str(c) for c in np.asarray(model.classes_).tolist()]
        lookup = {c: i for i, c in enumerate(classes)}
        text = labels[known].map(_label_text)
        idx = text.map(lookup)
        ok = idx.notna().to_numpy()
        unknown = int((~ok).sum())
        y = idx[ok].to_numpy(dtype=int)
        pred = outputs[known][ok]
    if len(y) == 0:
        return None
    try:
        value: float | None = float(metric.score(y, pred))
        note = None
    except ValueError as exc:  # e.g. ROC AUC with one class among the labelled rows
        value, note = None, str(exc)
    live = {
        "metric": version.metric,
        "value": value,
        "rows": len(y),
        "holdout": version.holdout_score,
        "greater_is_better": metric.greater_is_better,
    }
    if unknown:
        live["labels_not_in_classes"] = unknown
    if note:
        live["note"] = note
    return live


def _label_text(value: Any) -> str:
    """A label as the model's classes are keyed (``1.0`` read from CSV is the class ``1``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value.item() if hasattr(value, "item") else value)


def monitor_frame(
    store: Store,
    artifacts: ArtifactStore,
    version: ModelVersionRecord,
    frame: pd.DataFrame,
    *,
    source: str,
    source_detail: str | None,
    actor: str,
    row_ids: list[Any] | None = None,
    labels: pd.Series | None = None,
    outputs: np.ndarray | None = None,
    options: DriftOptions | None = None,
    drift_share: float | None = None,
    save: bool = True,
    output_columns: list[str] | None = None,
) -> MonitorResult:
    """Monitor ``frame`` (raw rows with the version's input columns) against the version's
    reference. ``outputs`` are the model's answers for the rows (probabilities for classifiers,
    values for regressors) when they were logged, their columns named by ``output_columns`` (class
    labels as text); otherwise the version predicts them now."""
    from automl.predict import load_version, missing_columns, single_threaded

    started = time.perf_counter()
    missing = missing_columns(frame.columns, version.input_schema)
    if missing:
        raise InputError(
            f"the rows to monitor lack {len(missing)} of the model's input column(s): {', '.join(missing[:10])}",
            hint="monitor a file with the columns the model was trained on (see `automl models show MODEL`)",
        )
    if len(frame) == 0:
        raise InputError("there are no rows to monitor", hint="give a file with rows, or a longer --since window")
    spec_options, spec_share = options_from_spec(store.get_job(version.job_id).spec)
    options = options or spec_options
    share = drift_share if drift_share is not None else spec_share
    ref_record = ensure_reference(store, artifacts, version)
    reference = ref_record.reference
    frame = frame.reset_index(drop=True)
    ids = row_ids if row_ids is not None else list(range(len(frame)))

    features = [feature_drift(name, ref, frame[name], options) for name, ref in reference["features"].items()]
    tested = [f for f in features if f.statistic is not None]
    drifted = sum(f.drifted for f in tested)
    dataset_drift = bool(tested) and drifted / len(tested) >= share

    with openmp_single_threaded():  # `monitor --retrain` forks trial children after this
        model = single_threaded(load_version(artifacts, version))
        if outputs is None:
            outputs = (
                np.asarray(model.predict(frame), dtype=float)
                if version.task == "regression"
                else np.asarray(model.predict_proba(frame), dtype=float)
            )
    prediction = None
    classes = None if version.task == "regression" else [str(c) for c in np.asarray(model.classes_).tolist()]
    if classes is not None and output_columns is not None:
        outputs = np.asarray(outputs)[:, [output_columns.index(c) for c in classes]]
    if classes is None:
        pred_values = pd.Series(outputs, dtype=float)
    else:
        pred_values = pd.Series([classes[i] for i in np.argmax(outputs, axis=1)], dtype=object)
    if "prediction" in reference:
        prediction = feature_drift(PREDICTION, reference["prediction"], pred_values, options)

    anomalies, flagged = feature_anomalies(frame, reference, ids)
    outliers = None
    if ref_record.outlier_uri:
        outlier_model = artifacts.get_object(ref_record.outlier_uri, ref_record.outlier_sha256 or "")
        outliers = outlier_rows(outlier_model, frame, ids)
        flagged = flagged | outliers["mask"]
    live = _live_metric(version, model, labels, outputs) if labels is not None else None

    result = MonitorResult(
        version=version,
        source=source,
        source_detail=source_detail,
        rows=len(frame),
        features=features,
        drift_share=share,
        dataset_drift=dataset_drift,
        prediction=prediction,
        anomalies=anomalies,
        anomaly_rows=int(flagged.sum()),
        outliers=outliers,
        live=live,
        seconds=time.perf_counter() - started,
        frames={"current": frame, "reference": reference, "predictions": pred_values},
    )
    if save:
        result.run = _save(store, result, actor)
    return result


def _save(store: Store, result: MonitorResult, actor: str) -> MonitorRunRecord:
    live = result.live or {}
    summary = result.to_dict()
    details = {
        "anomalies": summary["anomalies"],
        "prediction_drift": summary["prediction_drift"],
        "live": result.live,
    }
    features = [
        NewMonitorFeature(
            feature=f.name, kind=f.kind, method=f.method, statistic=f.statistic, threshold=f.threshold,
            drifted=f.drifted, psi=f.psi, rows=f.rows, details=_json_safe(f.details) or None,
        )
        for f in result.features
    ]  # fmt: skip
    return store.add_monitor_run(
        NewMonitorRun(
            model_name=result.version.model_name,
            version_id=result.version.id,
            source=result.source,
            source_detail=result.source_detail,
            rows=result.rows,
            features=len(result.features),
            drifted_features=len(result.drifted),
            drift_share=result.drift_share,
            dataset_drift=result.dataset_drift,
            prediction_drift=result.prediction.drifted if result.prediction else None,
            anomaly_rows=result.anomaly_rows,
            outlier_rows=result.outliers["count"] if result.outliers else None,
            live_metric=live.get("metric"),
            live_value=live.get("value"),
            live_rows=live.get("rows"),
            holdout_value=result.version.holdout_score,
            details=_json_safe(details),
            actor=actor,
        ),
        features,
    )


def _json_safe(value: Any) -> Any:
    """Plain JSON values (numpy scalars and NaN made portable for every backend's JSON column)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def monitor_logged(
    store: Store,
    artifacts: ArtifactStore,
    version: ModelVersionRecord,
    window: timedelta,
    *,
    actor: str,
    max_rows: int = 100_000,
    drift_share: float | None = None,
    options: DriftOptions | None = None,
    window_text: str | None = None,
) -> MonitorResult:
    """Monitor the rows ``version`` answered in the last ``window`` (the prediction log), with
    the answers it logged and the true labels `automl feedback` joined to them."""
    since = datetime.now(UTC) - window
    logged = store.list_prediction_logs(version.model_name, version_id=version.id, since=since, limit=max_rows)
    label = window_text or f"{window.total_seconds():g} s"
    if not logged:
        raise InputError(
            f"{version.model_name} v{version.version} (version id {version.id}) answered no logged row "
            f"in the last {label}",
            hint="serve it (`automl serve`) or predict with it (`automl predict`), or give a file with --input",
        )
    names = [c["name"] for c in version.input_schema]
    frame = pd.DataFrame([row.features for row in logged], columns=names)
    outputs: np.ndarray | None = None
    keys: list[str] = []
    if version.task == "regression":
        outputs = np.asarray([row.prediction for row in logged], dtype=float)
    elif all(row.probabilities for row in logged):
        keys = list(logged[0].probabilities or {})
        outputs = np.asarray([[row.probabilities[k] for k in keys] for row in logged], dtype=float)  # type: ignore[index]
    labels = pd.Series([row.label for row in logged], dtype=object)
    return monitor_frame(
        store, artifacts, version, frame,
        source="log", source_detail=f"since {label} ({since:%Y-%m-%d %H:%M:%S} UTC)", actor=actor,
        row_ids=[row.row_id for row in logged], labels=labels if labels.notna().any() else None,
        outputs=outputs, options=options, drift_share=drift_share,
        output_columns=keys if outputs is not None and version.task != "regression" else None,
    )  # fmt: skip
