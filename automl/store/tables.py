"""ORM rows of the metadata store. They never leave :mod:`automl.store.sql`.

Table names are chosen not to collide with Optuna's (``studies``, ``trials``, ``version_info``,
``alembic_version``, ...), which live in the same database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
RUN_STATUSES = ("running", "succeeded", "failed", "pruned", "timeout", "cancelled")
RUN_KINDS = ("trial", "ensemble", "refit")

IdType = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)


class DatasetRow(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    format: Mapped[str] = mapped_column(String(16))
    source_path: Mapped[str] = mapped_column(Text)
    stored_uri: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    n_rows: Mapped[int] = mapped_column(Integer)
    n_columns: Mapped[int] = mapped_column(Integer)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(_in("format", ("csv", "parquet")), name="format"),
        CheckConstraint("n_rows >= 0 AND n_columns >= 0", name="sizes"),
    )


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"), index=True)
    task: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str] = mapped_column(String(32))
    greater_is_better: Mapped[bool] = mapped_column(Boolean)
    model_name: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    study_name: Mapped[str | None] = mapped_column(String(200))
    selection: Mapped[list[Any] | None] = mapped_column(JSON)
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    environment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    submitted_by: Mapped[str] = mapped_column(String(200))
    time_budget_s: Mapped[float | None] = mapped_column(Float)
    trial_budget: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Fleet coordination: a shared trial counter, a cancel flag, and the single finalizer's claim.
    trials_started: Mapped[int] = mapped_column(Integer, server_default="0")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, server_default=false())
    finalize_claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # An in-process (embedded) runner's heartbeat: a running job whose heartbeat is stale lost it.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        CheckConstraint(_in("task", ("binary", "multiclass", "regression")), name="task"),
    )


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    trial_number: Mapped[int | None] = mapped_column(Integer)
    family: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    cv_score: Mapped[float | None] = mapped_column(Float)
    cv_std: Mapped[float | None] = mapped_column(Float)
    fold_scores: Mapped[list[Any] | None] = mapped_column(JSON)
    holdout_score: Mapped[float | None] = mapped_column(Float)
    fit_seconds: Mapped[float | None] = mapped_column(Float)
    members: Mapped[list[Any] | None] = mapped_column(JSON)
    oof_uri: Mapped[str | None] = mapped_column(Text)
    model_uri: Mapped[str | None] = mapped_column(Text)
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    folds_uri: Mapped[str | None] = mapped_column(Text)
    folds_sha256: Mapped[str | None] = mapped_column(String(64))
    predict_seconds_per_row: Mapped[float | None] = mapped_column(Float)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("job_id", "kind", "trial_number"),
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        CheckConstraint(_in("kind", RUN_KINDS), name="kind"),
    )


class ModelVersionRow(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="RESTRICT"), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    task: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str] = mapped_column(String(32))
    cv_score: Mapped[float | None] = mapped_column(Float)
    holdout_score: Mapped[float | None] = mapped_column(Float)
    artifact_uri: Mapped[str] = mapped_column(Text)
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    input_schema: Mapped[list[Any]] = mapped_column(JSON)
    evaluation_uri: Mapped[str | None] = mapped_column(Text)
    evaluation_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("model_name", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )


class MetricRow(Base):
    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    split: Mapped[str] = mapped_column(String(16))
    step: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        CheckConstraint("(run_id IS NULL) <> (model_version_id IS NULL)", name="one_owner"),
        CheckConstraint(_in("split", ("cv", "fold", "holdout", "train", "validation")), name="split"),
    )


class ModelAliasRow(Base):
    __tablename__ = "model_aliases"

    model_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AliasEventRow(Base):
    __tablename__ = "alias_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200))
    alias: Mapped[str] = mapped_column(String(64))
    from_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"))
    to_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_alias_events_model_alias", "model_name", "alias", "created_at"),)


class VersionReferenceRow(Base):
    """What monitoring compares a version's new inputs against (see :mod:`automl.monitoring`)."""

    __tablename__ = "version_references"

    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True)
    reference: Mapped[dict[str, Any]] = mapped_column(JSON)
    outlier_uri: Mapped[str | None] = mapped_column(Text)
    outlier_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MonitorRunRow(Base):
    __tablename__ = "monitor_runs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    source_detail: Mapped[str | None] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    features: Mapped[int] = mapped_column(Integer)
    drifted_features: Mapped[int] = mapped_column(Integer)
    drift_share: Mapped[float] = mapped_column(Float)
    dataset_drift: Mapped[bool] = mapped_column(Boolean)
    prediction_drift: Mapped[bool | None] = mapped_column(Boolean)
    anomaly_rows: Mapped[int] = mapped_column(Integer)
    outlier_rows: Mapped[int | None] = mapped_column(Integer)
    live_metric: Mapped[str | None] = mapped_column(String(32))
    live_value: Mapped[float | None] = mapped_column(Float)
    live_rows: Mapped[int | None] = mapped_column(Integer)
    holdout_value: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(_in("source", ("input", "log")), name="source"),
        Index("ix_monitor_runs_model_created", "model_name", "created_at"),
    )


class MonitorFeatureRow(Base):
    __tablename__ = "monitor_features"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    monitor_run_id: Mapped[int] = mapped_column(ForeignKey("monitor_runs.id", ondelete="CASCADE"), index=True)
    feature: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(32))
    statistic: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    drifted: Mapped[bool] = mapped_column(Boolean)
    psi: Mapped[float | None] = mapped_column(Float)
    rows: Mapped[int] = mapped_column(Integer)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class PredictionLogRow(Base):
    """One answered row of `automl serve` or `automl predict` (sampled; see the settings)."""

    __tablename__ = "prediction_log"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    row_id: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    prediction: Mapped[Any] = mapped_column(JSON)
    probabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
    label: Mapped[Any] = mapped_column(JSON, nullable=True)
    labeled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(_in("source", ("serve", "predict")), name="source"),
        Index("ix_prediction_log_model_created", "model_name", "created_at"),
        Index("ix_prediction_log_model_row", "model_name", "row_id"),
    )
