"""Immutable records the store returns (ORM rows never leave the store)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, kw_only=True)
class NewDataset:
    name: str
    fingerprint: str
    format: str
    source_path: str
    stored_uri: str
    size_bytes: int
    n_rows: int
    n_columns: int
    profile: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class DatasetRecord(NewDataset):
    id: int
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class NewJob:
    name: str
    spec: dict[str, Any]
    spec_hash: str
    dataset_id: int
    task: str
    metric: str
    greater_is_better: bool
    model_name: str
    seed: int
    submitted_by: str
    time_budget_s: float | None
    trial_budget: int | None
    status: str = "queued"


@dataclass(frozen=True, kw_only=True)
class JobRecord(NewJob):
    id: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    study_name: str | None
    selection: list[Any] | None
    profile: dict[str, Any] | None
    summary: dict[str, Any] | None
    environment: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    trials_started: int
    cancel_requested: bool
    finalize_claimed_at: datetime | None
    heartbeat_at: datetime | None = None  # set while an in-process runner (``automl run``) runs it

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


@dataclass(frozen=True, kw_only=True)
class JobCounters:
    """The few job fields a busy worker polls between trials (one small query)."""

    status: str
    cancel_requested: bool
    trials_started: int


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    id: int
    job_id: int
    kind: str
    trial_number: int | None
    family: str
    params: dict[str, Any]
    status: str
    cv_score: float | None
    cv_std: float | None
    fold_scores: list[float] | None
    holdout_score: float | None
    fit_seconds: float | None
    members: list[Any] | None
    oof_uri: str | None
    model_uri: str | None  # the model a trial fitted on its one validation split (holdout scheme)
    model_sha256: str | None
    folds_uri: str | None = None  # the models a trial's K folds fitted (K-fold CV, tree families)
    folds_sha256: str | None = None
    # Seconds the trial's fits took to predict their validation rows, per row (succeeded trials).
    predict_seconds_per_row: float | None = None
    error_code: str | None
    error_message: str | None
    worker: str | None
    heartbeat_at: datetime | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """What a finished run reports back to the store."""

    status: str
    cv_score: float | None = None
    cv_std: float | None = None
    fold_scores: list[float] | None = None
    fit_seconds: float | None = None
    oof_uri: str | None = None
    model_uri: str | None = None
    model_sha256: str | None = None
    folds_uri: str | None = None
    folds_sha256: str | None = None
    predict_seconds_per_row: float | None = None
    members: list[Any] | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, kw_only=True)
class NewMetric:
    name: str
    value: float
    split: str
    run_id: int | None = None
    model_version_id: int | None = None
    step: int | None = None


@dataclass(frozen=True, kw_only=True)
class MetricRecord(NewMetric):
    id: int


@dataclass(frozen=True, kw_only=True)
class NewModelVersion:
    model_name: str
    job_id: int
    run_id: int | None
    task: str
    metric: str
    cv_score: float | None
    holdout_score: float | None
    artifact_uri: str
    artifact_sha256: str
    input_schema: list[Any] = field(default_factory=list)
    # The fit that produced holdout_score (trained on the training rows only), when the registered
    # artifact was refit on more rows; the promotion gate scores this one. None: the artifact itself.
    evaluation_uri: str | None = None
    evaluation_sha256: str | None = None


@dataclass(frozen=True, kw_only=True)
class ModelVersionRecord(NewModelVersion):
    id: int
    version: int
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class AliasRecord:
    """A name (``production``, ``staging``, ...) pointing at one version of a model."""

    model_name: str
    alias: str
    version_id: int
    updated_at: datetime


@dataclass(frozen=True, kw_only=True)
class AliasEventRecord:
    """One move of an alias, on record: who, when, from which version to which, and why."""

    id: int
    model_name: str
    alias: str
    from_version_id: int | None
    to_version_id: int | None
    actor: str
    reason: str | None
    details: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class LeaderboardRow:
    """One row of the ``leaderboard`` SQL view: a run of a job, ranked by CV score among the
    succeeded ones (``rank`` None for the others)."""

    job_id: int
    job_name: str
    metric: str
    rank: int | None
    run_id: int
    kind: str  # trial or ensemble
    trial_number: int | None
    family: str
    status: str
    cv_score: float | None
    cv_std: float | None
    holdout_score: float | None
    fit_seconds: float | None
    worker: str | None
    error_code: str | None
    started_at: datetime | None
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class VersionSummary:
    """One row of the ``model_version_summary`` SQL view: a model version with its job's scores,
    winning family, dataset and trial count."""

    version_id: int
    model_name: str
    version: int
    job_id: int
    task: str
    metric: str
    cv_score: float | None
    holdout_score: float | None
    winner_kind: str | None
    winner_family: str | None
    dataset_id: int
    dataset_name: str
    dataset_fingerprint: str
    submitted_by: str | None
    trials: int
    artifact_uri: str
    artifact_sha256: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class ReferenceRecord:
    """A version's monitoring reference (:mod:`automl.monitoring.reference`) and outlier model."""

    version_id: int
    reference: dict[str, Any]
    outlier_uri: str | None
    outlier_sha256: str | None
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class NewMonitorFeature:
    feature: str
    kind: str
    method: str
    statistic: float | None
    threshold: float
    drifted: bool
    psi: float | None
    rows: int
    details: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class NewMonitorRun:
    model_name: str
    version_id: int
    source: str  # "input" (a file) or "log" (logged traffic)
    source_detail: str | None
    rows: int
    features: int
    drifted_features: int
    drift_share: float
    dataset_drift: bool
    prediction_drift: bool | None
    anomaly_rows: int
    outlier_rows: int | None
    live_metric: str | None
    live_value: float | None
    live_rows: int | None
    holdout_value: float | None
    details: dict[str, Any] | None
    actor: str


@dataclass(frozen=True, kw_only=True)
class MonitorRunRecord(NewMonitorRun):
    id: int
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class ModelHealthRow:
    """One row of the ``model_health`` SQL view: a monitor run of a version, and whether the
    ``production`` alias points at that version now."""

    monitor_run_id: int
    model_name: str
    version: int
    version_id: int
    in_production: bool
    checked_at: datetime
    source: str
    rows: int
    features: int
    drifted_features: int
    dataset_drift: bool
    prediction_drift: bool | None
    anomaly_rows: int
    outlier_rows: int | None
    metric: str
    live_metric: str | None
    live_value: float | None
    live_rows: int | None
    holdout_value: float | None


@dataclass(frozen=True, kw_only=True)
class NewPredictionLog:
    model_name: str
    version_id: int
    row_id: str
    source: str  # "serve" or "predict"
    created_at: datetime
    latency_ms: float | None
    prediction: Any
    probabilities: dict[str, Any] | None
    features: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class PredictionLogRecord(NewPredictionLog):
    id: int
    label: Any
    labeled_at: datetime | None
