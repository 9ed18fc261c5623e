"""The SQLAlchemy store: SQLite (embedded default) and PostgreSQL (the fleet), same code."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from automl.errors import InputError, NotFound, StoreConflict, StoreError, StoreUnavailable
from automl.store import records as rec
from automl.store.base import Store
from automl.store.schema import ensure_schema
from automl.store.tables import (
    JOB_STATUSES,
    AliasEventRow,
    DatasetRow,
    JobRow,
    MetricRow,
    ModelAliasRow,
    ModelVersionRow,
    MonitorFeatureRow,
    MonitorRunRow,
    PredictionLogRow,
    RunRow,
    VersionReferenceRow,
)
from automl.store.urls import is_sqlite, make_engine, normalize_url

R = TypeVar("R")


# Where a user finds the ids of each kind of row (commands that exist: see `automl --help`).
_LIST_HINTS = {
    "dataset": "list them with `automl datasets list`",
    "job": "list them with `automl jobs list`",
    "run": "a job's runs are listed by `automl leaderboard JOB_ID`",
    "model version": "list a model's versions with `automl models versions NAME` (the names: `automl models list`)",
    "monitor run": "list them with `automl models health`",
}


def _view_row(record: type[R], row: dict[str, Any]) -> R:
    """A view's row as its record: the record's columns (a view may gain columns in a later
    revision; the record names those it promises)."""
    names = {f.name for f in dataclasses.fields(record)}  # type: ignore[arg-type]
    return record(**{k: v for k, v in row.items() if k in names})


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    # PostgreSQL answers in the session's TimeZone; records are always in UTC.
    return value.astimezone(UTC) if value is not None else None


def _record(cls: type[R], row: Any) -> R:
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(row, f.name)
        values[f.name] = _utc(value) if isinstance(value, datetime) else value
    return cls(**values)


def now() -> datetime:
    return datetime.now(UTC)


class SqlStore(Store):
    """Metadata store on any SQLAlchemy URL. SQLite files upgrade their schema on first use."""

    def __init__(self, url: str, *, auto_upgrade: bool | None = None) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if auto_upgrade is None:
            auto_upgrade = is_sqlite(self.url)
        try:
            ensure_schema(self.engine, self.url, auto_upgrade=auto_upgrade)
        except (OperationalError, DBAPIError) as exc:
            self.engine.dispose()
            raise self._unavailable(exc) from exc
        except BaseException:
            self.engine.dispose()  # a refused (stale) store keeps no connection open
            raise

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        shown = make_url(self.url).render_as_string(hide_password=True)
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        if not is_sqlite(self.url):
            hint = "check that the database server is running and AUTOML_DATABASE_URL is right"
        elif "locked" in detail or "busy" in detail:
            hint = "another process held the SQLite file's write lock too long: retry, or use PostgreSQL"
        else:
            hint = "check that the SQLite file's folder exists and is writable, and AUTOML_DATABASE_URL is right"
        return StoreUnavailable(f"cannot reach the metadata store at {shown}: {detail}", hint=hint)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on error, maps driver errors."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            detail = str(exc.orig).strip().splitlines()[0]
            raise StoreConflict(f"the store refused a write: {detail}") from exc
        except (OperationalError, DBAPIError) as exc:
            session.rollback()
            if getattr(exc, "connection_invalidated", False) or isinstance(exc, OperationalError):
                raise self._unavailable(exc) from exc
            raise StoreError(f"database error: {str(exc.orig).strip().splitlines()[0]}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _get(self, session: Session, row_type: type[Any], key: Any, what: str) -> Any:
        row = session.get(row_type, key)
        if row is None:
            raise NotFound(f"{what} {key} does not exist", hint=_LIST_HINTS.get(what, "check the id"))
        return row

    # -- datasets -------------------------------------------------------------------------------
    def add_dataset(self, new: rec.NewDataset) -> tuple[rec.DatasetRecord, bool]:
        existing = self.find_dataset(new.fingerprint)
        if existing is not None:
            return existing, False
        try:
            with self._session() as s:
                row = DatasetRow(**dataclasses.asdict(new), created_at=now())
                s.add(row)
                s.flush()
                return _record(rec.DatasetRecord, row), True
        except StoreConflict:
            # Registered concurrently by someone else: the content is the same, return theirs.
            found = self.find_dataset(new.fingerprint)
            if found is None:
                raise
            return found, False

    def get_dataset(self, dataset_id: int) -> rec.DatasetRecord:
        with self._session() as s:
            return _record(rec.DatasetRecord, self._get(s, DatasetRow, dataset_id, "dataset"))

    def find_dataset(self, fingerprint: str) -> rec.DatasetRecord | None:
        with self._session() as s:
            row = s.scalars(select(DatasetRow).where(DatasetRow.fingerprint == fingerprint)).first()
            return None if row is None else _record(rec.DatasetRecord, row)

    def list_datasets(self) -> list[rec.DatasetRecord]:
        with self._session() as s:
            rows = s.scalars(select(DatasetRow).order_by(DatasetRow.id)).all()
            return [_record(rec.DatasetRecord, r) for r in rows]

    # -- jobs -----------------------------------------------------------------------------------
    def create_job(self, new: rec.NewJob) -> rec.JobRecord:
        if new.status not in JOB_STATUSES:
            raise ValueError(f"job status must be one of {JOB_STATUSES}, got {new.status!r}")
        with self._session() as s:
            row = JobRow(**dataclasses.asdict(new), created_at=now())
            s.add(row)
            s.flush()
            return _record(rec.JobRecord, row)

    def get_job(self, job_id: int) -> rec.JobRecord:
        with self._session() as s:
            return _record(rec.JobRecord, self._get(s, JobRow, job_id, "job"))

    def list_jobs(self, status: str | None = None, limit: int = 50) -> list[rec.JobRecord]:
        with self._session() as s:
            query = select(JobRow).order_by(JobRow.id.desc()).limit(limit)
            if status:
                query = query.where(JobRow.status == status)
            return [_record(rec.JobRecord, r) for r in s.scalars(query).all()]

    def claim_job(self, job_id: int) -> bool:
        with self._session() as s:
            result = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "queued")
                .values(status="running", started_at=now())
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def update_job(
        self,
        job_id: int,
        *,
        study_name: str | None = None,
        selection: list[Any] | None = None,
        profile: dict[str, Any] | None = None,
        environment: dict[str, Any] | None = None,
        started_at: datetime | None = None,
        time_budget_s: float | None = None,
    ) -> rec.JobRecord:
        fields = {
            "study_name": study_name, "selection": selection, "profile": profile, "environment": environment,
            "started_at": started_at, "time_budget_s": time_budget_s,
        }  # fmt: skip
        with self._session() as s:
            row = self._get(s, JobRow, job_id, "job")
            for key, value in fields.items():
                if value is not None:
                    setattr(row, key, value)
            s.flush()
            return _record(rec.JobRecord, row)

    def merge_job_summary(self, job_id: int, updates: dict[str, Any]) -> rec.JobRecord:
        with self._session() as s:
            if is_sqlite(self.url):
                s.connection().exec_driver_sql("BEGIN IMMEDIATE")  # the write lock before the read
                row = self._get(s, JobRow, job_id, "job")
            else:
                row = s.scalars(select(JobRow).where(JobRow.id == job_id).with_for_update()).first()
                if row is None:
                    self._get(s, JobRow, job_id, "job")  # raises NotFound
            row.summary = {**(row.summary or {}), **updates}
            s.flush()
            return _record(rec.JobRecord, row)

    def finish_job(
        self, job_id: int, status: str, error_code: str | None = None, error_message: str | None = None
    ) -> rec.JobRecord:
        if status not in ("succeeded", "failed", "cancelled"):
            raise ValueError(f"a finished job is succeeded, failed or cancelled, not {status!r}")
        with self._session() as s:
            row = self._get(s, JobRow, job_id, "job")
            row.status = status
            row.error_code = error_code
            row.error_message = error_message
            row.finished_at = now()
            s.flush()
            return _record(rec.JobRecord, row)

    # -- fleet coordination ---------------------------------------------------------------------
    def job_counters(self, job_id: int) -> rec.JobCounters:
        with self._session() as s:
            row = s.execute(
                select(JobRow.status, JobRow.cancel_requested, JobRow.trials_started).where(JobRow.id == job_id)
            ).one_or_none()
            if row is None:
                raise NotFound(f"job {job_id} does not exist", hint="list them with `automl jobs list`")
            return rec.JobCounters(status=row[0], cancel_requested=bool(row[1]), trials_started=int(row[2]))

    def claim_trial_slot(self, job_id: int, cap: int | None) -> bool:
        query = update(JobRow).where(JobRow.id == job_id, JobRow.status == "running")
        if cap is not None:
            query = query.where(JobRow.trials_started < cap)
        with self._session() as s:
            result = s.execute(query.values(trials_started=JobRow.trials_started + 1))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def release_trial_slot(self, job_id: int) -> None:
        with self._session() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.trials_started > 0)
                .values(trials_started=JobRow.trials_started - 1)
            )

    def reset_trial_slots(self, job_id: int, observed: int, started: int) -> bool:
        with self._session() as s:
            result = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.trials_started == observed)
                .values(trials_started=started)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def request_cancel(self, job_id: int) -> rec.JobRecord:
        with self._session() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "queued")
                .values(status="cancelled", cancel_requested=True, finished_at=now(), error_code="CANCELLED",
                        error_message="cancelled before it started")
            )  # fmt: skip
            s.execute(
                update(JobRow).where(JobRow.id == job_id, JobRow.status == "running").values(cancel_requested=True)
            )
            return _record(rec.JobRecord, self._get(s, JobRow, job_id, "job"))

    def claim_finalize(self, job_id: int) -> bool:
        with self._session() as s:
            result = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "running", JobRow.finalize_claimed_at.is_(None))
                .values(finalize_claimed_at=now())
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def release_finalize(self, job_id: int) -> None:
        with self._session() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(finalize_claimed_at=None))

    def heartbeat_job(self, job_id: int) -> None:
        with self._session() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "running").values(heartbeat_at=now()))

    def claim_stalled_job(self, job_id: int, older_than_s: float) -> bool:
        from datetime import timedelta

        limit = now() - timedelta(seconds=older_than_s)
        with self._session() as s:
            result = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "running")
                .where(func.coalesce(JobRow.heartbeat_at, JobRow.started_at) < limit)
                .values(heartbeat_at=now())
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def heartbeat_run(self, run_id: int) -> None:
        with self._session() as s:
            s.execute(update(RunRow).where(RunRow.id == run_id).values(heartbeat_at=now()))

    def fail_stale_runs(self, job_id: int, older_than_s: float) -> list[rec.RunRecord]:
        from datetime import timedelta

        limit = now() - timedelta(seconds=older_than_s)
        with self._session() as s:
            stale = s.scalars(
                select(RunRow)
                .where(RunRow.job_id == job_id, RunRow.status == "running")
                .where(func.coalesce(RunRow.heartbeat_at, RunRow.started_at) < limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in stale:
                row.status = "failed"
                row.error_code = "WORKER_LOST"
                row.error_message = f"no heartbeat for {older_than_s:.0f} s or more: the process running it died"
                row.finished_at = now()
            s.flush()
            return [_record(rec.RunRecord, row) for row in stale]

    # -- runs -----------------------------------------------------------------------------------
    def start_run(
        self,
        job_id: int,
        kind: str,
        family: str,
        params: dict[str, Any],
        trial_number: int | None = None,
        worker: str | None = None,
    ) -> rec.RunRecord:
        with self._session() as s:
            row = RunRow(
                job_id=job_id,
                kind=kind,
                family=family,
                params=params,
                trial_number=trial_number,
                worker=worker,
                status="running",
                started_at=now(),
            )
            s.add(row)
            s.flush()
            return _record(rec.RunRecord, row)

    def finish_run(self, run_id: int, result: rec.RunResult) -> rec.RunRecord:
        with self._session() as s:
            row = self._get(s, RunRow, run_id, "run")
            for key, value in dataclasses.asdict(result).items():
                setattr(row, key, value)
            row.finished_at = now()
            s.flush()
            return _record(rec.RunRecord, row)

    def set_run_holdout(self, run_id: int, holdout_score: float) -> None:
        with self._session() as s:
            self._get(s, RunRow, run_id, "run").holdout_score = holdout_score

    def get_run(self, run_id: int) -> rec.RunRecord:
        with self._session() as s:
            return _record(rec.RunRecord, self._get(s, RunRow, run_id, "run"))

    def list_runs(self, job_id: int) -> list[rec.RunRecord]:
        with self._session() as s:
            rows = s.scalars(select(RunRow).where(RunRow.job_id == job_id).order_by(RunRow.id)).all()
            return [_record(rec.RunRecord, r) for r in rows]

    # -- metrics --------------------------------------------------------------------------------
    def add_metrics(self, metrics: Sequence[rec.NewMetric]) -> None:
        with self._session() as s:
            s.add_all(MetricRow(**dataclasses.asdict(m)) for m in metrics)

    def list_metrics(self, *, run_id: int | None = None, model_version_id: int | None = None) -> list[rec.MetricRecord]:
        with self._session() as s:
            query = select(MetricRow).order_by(MetricRow.id)
            if run_id is not None:
                query = query.where(MetricRow.run_id == run_id)
            if model_version_id is not None:
                query = query.where(MetricRow.model_version_id == model_version_id)
            return [_record(rec.MetricRecord, r) for r in s.scalars(query).all()]

    # -- model versions -------------------------------------------------------------------------
    def create_model_version(self, new: rec.NewModelVersion) -> rec.ModelVersionRecord:
        for _attempt in range(10):
            existing = self.version_for_job(new.job_id)
            if existing is not None:
                raise StoreConflict(
                    f"job {new.job_id} already registered version {existing.version} of "
                    f"'{existing.model_name}' (id {existing.id}); a job registers exactly one version"
                )
            try:
                with self._session() as s:
                    latest = s.scalar(
                        select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_name == new.model_name)
                    )
                    row = ModelVersionRow(**dataclasses.asdict(new), version=(latest or 0) + 1, created_at=now())
                    s.add(row)
                    s.flush()
                    return _record(rec.ModelVersionRecord, row)
            except StoreConflict:
                continue  # another job took this number (or this job raced itself): look again
        raise StoreConflict(f"could not allocate a version number for '{new.model_name}'")

    def get_model_version(self, version_id: int) -> rec.ModelVersionRecord:
        with self._session() as s:
            row = self._get(s, ModelVersionRow, version_id, "model version")
            return _record(rec.ModelVersionRecord, row)

    def find_model_version(self, model_name: str, version: int) -> rec.ModelVersionRecord:
        with self._session() as s:
            row = s.scalars(
                select(ModelVersionRow).where(
                    ModelVersionRow.model_name == model_name, ModelVersionRow.version == version
                )
            ).first()
            if row is None:
                raise NotFound(
                    f"model '{model_name}' has no version {version}",
                    hint=f"list its versions with `automl leaderboard --model {model_name}`",
                )
            return _record(rec.ModelVersionRecord, row)

    def list_model_versions(self, model_name: str | None = None) -> list[rec.ModelVersionRecord]:
        with self._session() as s:
            query = select(ModelVersionRow).order_by(ModelVersionRow.model_name, ModelVersionRow.version)
            if model_name is not None:
                query = query.where(ModelVersionRow.model_name == model_name)
            return [_record(rec.ModelVersionRecord, r) for r in s.scalars(query).all()]

    def version_for_job(self, job_id: int) -> rec.ModelVersionRecord | None:
        with self._session() as s:
            row = s.scalars(select(ModelVersionRow).where(ModelVersionRow.job_id == job_id)).first()
            return None if row is None else _record(rec.ModelVersionRecord, row)

    # -- aliases --------------------------------------------------------------------------------
    def _lock_model(self, s: Session, model_name: str) -> None:
        """Serialize alias moves of one model until the transaction ends."""
        if is_sqlite(self.url):
            # The write lock now, before anything is read: racing movers queue here (busy_timeout).
            s.connection().exec_driver_sql("BEGIN IMMEDIATE")
        else:
            s.execute(
                select(ModelVersionRow.id)
                .where(ModelVersionRow.model_name == model_name)
                .order_by(ModelVersionRow.id)
                .limit(1)
                .with_for_update()
            )

    def move_alias(
        self,
        model_name: str,
        alias: str,
        version_id: int | None,
        *,
        actor: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> rec.AliasEventRecord | None:
        with self._session() as s:
            self._lock_model(s, model_name)
            current = s.get(ModelAliasRow, (model_name, alias), populate_existing=True)
            if version_id is None:
                if current is None:
                    raise InputError(
                        f"{model_name}@{alias} points at no version, so there is nothing to roll back",
                        hint=f"name the version: `automl rollback {model_name} --to VERSION_ID`",
                    )
                last = s.scalars(
                    select(AliasEventRow)
                    .where(AliasEventRow.model_name == model_name, AliasEventRow.alias == alias)
                    .where(AliasEventRow.to_version_id == current.version_id)
                    .where(AliasEventRow.from_version_id.is_not(None))
                    .order_by(AliasEventRow.id.desc())
                ).first()
                if last is None or last.from_version_id is None:
                    raise InputError(
                        f"{model_name}@{alias} has pointed at version id {current.version_id} only, "
                        "so there is no earlier version to roll back to",
                        hint=f"see the versions with `automl models versions {model_name}`",
                    )
                version_id = last.from_version_id
            target = s.get(ModelVersionRow, version_id)
            if target is None:
                raise NotFound(
                    f"model version id {version_id} does not exist",
                    hint=f"see the versions with `automl models versions {model_name}`",
                )
            if target.model_name != model_name:
                raise InputError(
                    f"version id {version_id} belongs to model '{target.model_name}', not '{model_name}'",
                    hint=f"see the versions with `automl models versions {model_name}`",
                )
            if current is not None and current.version_id == version_id:
                return None
            moved_at = now()
            from_id = current.version_id if current is not None else None
            if current is None:
                s.add(ModelAliasRow(model_name=model_name, alias=alias, version_id=version_id, updated_at=moved_at))
            else:
                current.version_id, current.updated_at = version_id, moved_at
            event = AliasEventRow(
                model_name=model_name, alias=alias, from_version_id=from_id, to_version_id=version_id,
                actor=actor, reason=reason, details=details, created_at=moved_at,
            )  # fmt: skip
            s.add(event)
            s.flush()
            return _record(rec.AliasEventRecord, event)

    def get_alias(self, model_name: str, alias: str) -> rec.AliasRecord | None:
        with self._session() as s:
            row = s.get(ModelAliasRow, (model_name, alias))
            return None if row is None else _record(rec.AliasRecord, row)

    def list_aliases(self, model_name: str | None = None) -> list[rec.AliasRecord]:
        with self._session() as s:
            query = select(ModelAliasRow).order_by(ModelAliasRow.model_name, ModelAliasRow.alias)
            if model_name is not None:
                query = query.where(ModelAliasRow.model_name == model_name)
            return [_record(rec.AliasRecord, r) for r in s.scalars(query).all()]

    def list_alias_events(self, model_name: str, alias: str | None = None) -> list[rec.AliasEventRecord]:
        with self._session() as s:
            query = select(AliasEventRow).where(AliasEventRow.model_name == model_name).order_by(AliasEventRow.id)
            if alias is not None:
                query = query.where(AliasEventRow.alias == alias)
            return [_record(rec.AliasEventRecord, r) for r in s.scalars(query).all()]

    # -- monitoring -----------------------------------------------------------------------------
    def put_reference(
        self, version_id: int, reference: dict[str, Any], outlier_uri: str | None, outlier_sha256: str | None
    ) -> rec.ReferenceRecord:
        with self._session() as s:
            self._get(s, ModelVersionRow, version_id, "model version")
            row = s.get(VersionReferenceRow, version_id)
            if row is None:
                row = VersionReferenceRow(version_id=version_id, reference=reference, created_at=now())
                s.add(row)
            row.reference, row.outlier_uri, row.outlier_sha256 = reference, outlier_uri, outlier_sha256
            s.flush()
            return _record(rec.ReferenceRecord, row)

    def get_reference(self, version_id: int) -> rec.ReferenceRecord | None:
        with self._session() as s:
            row = s.get(VersionReferenceRow, version_id)
            return None if row is None else _record(rec.ReferenceRecord, row)

    def add_monitor_run(
        self, new: rec.NewMonitorRun, features: Sequence[rec.NewMonitorFeature]
    ) -> rec.MonitorRunRecord:
        with self._session() as s:
            row = MonitorRunRow(**dataclasses.asdict(new), created_at=now())
            s.add(row)
            s.flush()
            s.add_all(MonitorFeatureRow(monitor_run_id=row.id, **dataclasses.asdict(f)) for f in features)
            return _record(rec.MonitorRunRecord, row)

    def list_monitor_runs(self, model_name: str | None = None, limit: int = 50) -> list[rec.MonitorRunRecord]:
        with self._session() as s:
            query = select(MonitorRunRow).order_by(MonitorRunRow.id.desc()).limit(limit)
            if model_name is not None:
                query = query.where(MonitorRunRow.model_name == model_name)
            return [_record(rec.MonitorRunRecord, r) for r in s.scalars(query).all()]

    def monitor_features(self, monitor_run_id: int) -> list[rec.NewMonitorFeature]:
        with self._session() as s:
            self._get(s, MonitorRunRow, monitor_run_id, "monitor run")
            rows = s.scalars(
                select(MonitorFeatureRow)
                .where(MonitorFeatureRow.monitor_run_id == monitor_run_id)
                .order_by(MonitorFeatureRow.id)
            ).all()
            return [_record(rec.NewMonitorFeature, r) for r in rows]

    def model_health(self, model_name: str | None = None) -> list[rec.ModelHealthRow]:
        where = "WHERE model_name = :name " if model_name is not None else ""
        query = text(f"SELECT * FROM model_health {where}ORDER BY monitor_run_id DESC")
        with self._session() as s:
            rows = s.execute(query, {"name": model_name}).mappings()
            out = []
            for row in rows:
                plain = self._plain(row)
                for key in ("in_production", "dataset_drift", "prediction_drift"):
                    if plain.get(key) is not None:
                        plain[key] = bool(plain[key])
                out.append(_view_row(rec.ModelHealthRow, plain))
            return out

    # -- prediction log -------------------------------------------------------------------------
    def add_prediction_logs(self, rows: Sequence[rec.NewPredictionLog]) -> None:
        if not rows:
            return
        with self._session() as s:
            s.execute(insert(PredictionLogRow), [dataclasses.asdict(r) for r in rows])

    def list_prediction_logs(
        self,
        model_name: str,
        *,
        version_id: int | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[rec.PredictionLogRecord]:
        with self._session() as s:
            query = select(PredictionLogRow).where(PredictionLogRow.model_name == model_name)
            if version_id is not None:
                query = query.where(PredictionLogRow.version_id == version_id)
            if since is not None:
                query = query.where(PredictionLogRow.created_at >= since)
            query = query.order_by(PredictionLogRow.id.desc())
            if limit is not None:
                query = query.limit(limit)
            rows = [_record(rec.PredictionLogRecord, r) for r in s.scalars(query).all()]
            return rows[::-1]

    def set_labels(self, model_name: str, labels: dict[str, Any]) -> int:
        if not labels:
            return 0
        stamp = now()
        statement = (
            update(PredictionLogRow.__table__)  # type: ignore[arg-type]
            .where(PredictionLogRow.model_name == model_name, PredictionLogRow.row_id == bindparam("rid"))
            .values(label=bindparam("value"), labeled_at=stamp)
        )
        params = [{"rid": str(k), "value": v} for k, v in labels.items()]
        ids = [p["rid"] for p in params]
        with self._session() as s:
            # Counted first: drivers do not all report an executemany's row count.
            matched = 0
            for start in range(0, len(ids), 1000):
                matched += (
                    s.scalar(
                        select(func.count())
                        .select_from(PredictionLogRow)
                        .where(
                            PredictionLogRow.model_name == model_name,
                            PredictionLogRow.row_id.in_(ids[start : start + 1000]),
                        )
                    )
                    or 0
                )
            s.connection().execute(statement, params)
            return int(matched)

    def purge_prediction_logs(self, older_than: datetime) -> int:
        with self._session() as s:
            result = s.execute(delete(PredictionLogRow).where(PredictionLogRow.created_at < older_than))
            return int(getattr(result, "rowcount", 0) or 0)

    # -- views ----------------------------------------------------------------------------------
    def leaderboard(self, job_id: int) -> list[rec.LeaderboardRow]:
        query = text(
            "SELECT * FROM leaderboard WHERE job_id = :job "
            "ORDER BY CASE WHEN rank IS NULL THEN 1 ELSE 0 END, rank, run_id"
        )
        with self._session() as s:
            return [
                _view_row(rec.LeaderboardRow, self._plain(row)) for row in s.execute(query, {"job": job_id}).mappings()
            ]

    def version_summaries(self, model_name: str) -> list[rec.VersionSummary]:
        query = text("SELECT * FROM model_version_summary WHERE model_name = :name ORDER BY version DESC")
        with self._session() as s:
            rows = s.execute(query, {"name": model_name}).mappings()
            return [_view_row(rec.VersionSummary, self._plain(row)) for row in rows]

    @staticmethod
    def _plain(row: Any) -> dict[str, Any]:
        plain = dict(row)
        for key, value in plain.items():
            if key.endswith("_at") and isinstance(value, str):  # SQLite views return timestamps as text
                value = datetime.fromisoformat(value)
            plain[key] = _utc(value) if isinstance(value, datetime) else value
        return plain

    def close(self) -> None:
        self.engine.dispose()
