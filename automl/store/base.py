"""The store contract: what every metadata backend provides.

One contract, one test suite (``tests/store/test_contract.py``) run against every backend. The
URL picks the backend (:func:`automl.store.open_store`). Methods return frozen records from
:mod:`automl.store.records`, never ORM rows, and raise only :mod:`automl.errors` types:
``NotFound`` for a missing id, ``StoreConflict`` when a uniqueness rule refuses a write,
``StoreUnavailable`` when the database cannot be reached, ``StoreSchemaStale`` when the schema
is older than the code.

Rules the backends enforce (in the database, not in Python):

* a dataset is stored once per content fingerprint;
* at most one model version per job, and version numbers are unique per model name;
* trial runs are unique per (job, trial number), so a redelivered trial cannot be counted twice;
* job and run statuses are drawn from fixed sets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from automl.store.records import (
    AliasEventRecord,
    AliasRecord,
    DatasetRecord,
    JobCounters,
    JobRecord,
    LeaderboardRow,
    MetricRecord,
    ModelHealthRow,
    ModelVersionRecord,
    MonitorRunRecord,
    NewDataset,
    NewJob,
    NewMetric,
    NewModelVersion,
    NewMonitorFeature,
    NewMonitorRun,
    NewPredictionLog,
    PredictionLogRecord,
    ReferenceRecord,
    RunRecord,
    RunResult,
    VersionSummary,
)


class Store(ABC):
    """Metadata store contract."""

    url: str

    # -- datasets -------------------------------------------------------------------------------
    @abstractmethod
    def add_dataset(self, new: NewDataset) -> tuple[DatasetRecord, bool]:
        """Register a dataset; returns ``(record, created)``. Same fingerprint → the existing one."""

    @abstractmethod
    def get_dataset(self, dataset_id: int) -> DatasetRecord:
        """The dataset with this id; ``NotFound`` otherwise."""

    @abstractmethod
    def find_dataset(self, fingerprint: str) -> DatasetRecord | None:
        """The dataset with this content fingerprint, or None."""

    @abstractmethod
    def list_datasets(self) -> list[DatasetRecord]:
        """Every dataset, oldest first."""

    # -- jobs -----------------------------------------------------------------------------------
    @abstractmethod
    def create_job(self, new: NewJob) -> JobRecord:
        """Record a new job (``queued`` unless ``new.status`` says otherwise; an unknown status is a
        ``ValueError``)."""

    @abstractmethod
    def get_job(self, job_id: int) -> JobRecord:
        """The job with this id; ``NotFound`` otherwise."""

    @abstractmethod
    def list_jobs(self, status: str | None = None, limit: int = 50) -> list[JobRecord]:
        """The newest ``limit`` jobs, newest first, of one status when ``status`` is given."""

    @abstractmethod
    def claim_job(self, job_id: int) -> bool:
        """Move a ``queued`` job to ``running``; False if another caller already did."""

    @abstractmethod
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
    ) -> JobRecord:
        """Set the descriptive fields given (None leaves a field as it is); status, counters and the
        summary change only through their own calls. Raises ``NotFound`` for an unknown job."""

    @abstractmethod
    def merge_job_summary(self, job_id: int, updates: dict[str, Any]) -> JobRecord:
        """Set the top-level keys of ``updates`` in the job's summary, keeping every other key, as
        one atomic read-modify-write (the job row is locked until it commits): two processes
        merging at once both keep their keys. Raises ``NotFound`` for an unknown job."""

    @abstractmethod
    def finish_job(
        self, job_id: int, status: str, error_code: str | None = None, error_message: str | None = None
    ) -> JobRecord:
        """End a job: ``succeeded``, ``failed`` or ``cancelled`` (anything else is a ``ValueError``),
        with the error when there is one, stamping ``finished_at``. ``NotFound`` for an unknown job."""

    # -- fleet coordination (every rule is one conditional UPDATE, so racing workers agree) --------
    @abstractmethod
    def job_counters(self, job_id: int) -> JobCounters:
        """Status, cancel flag and trials started: what a worker checks between trials, cheaply."""

    @abstractmethod
    def claim_trial_slot(self, job_id: int, cap: int | None) -> bool:
        """Count one more trial started for the job; False once ``cap`` trials have started."""

    @abstractmethod
    def release_trial_slot(self, job_id: int) -> None:
        """Give back a slot claimed for a trial that never started."""

    @abstractmethod
    def heartbeat_job(self, job_id: int) -> None:
        """An in-process runner is alive: stamp the running job's heartbeat."""

    @abstractmethod
    def claim_stalled_job(self, job_id: int, older_than_s: float) -> bool:
        """Take over a running job whose runner has not heartbeated for ``older_than_s`` (it
        died): stamps the heartbeat, so of racing callers one wins; False if it is alive or ended."""

    @abstractmethod
    def reset_trial_slots(self, job_id: int, observed: int, started: int) -> bool:
        """Set the trials-started count to ``started`` if it still reads ``observed`` (slots lost
        by a worker that died between claiming them and starting a trial); False if it moved."""

    @abstractmethod
    def request_cancel(self, job_id: int) -> JobRecord:
        """Cancel a job: a queued one ends ``cancelled`` now; a running one is flagged to stop."""

    @abstractmethod
    def claim_finalize(self, job_id: int) -> bool:
        """True for exactly one caller per running job: that caller runs the finalizing step."""

    @abstractmethod
    def release_finalize(self, job_id: int) -> None:
        """Give the finalize claim back (the finalizer failed in a way another may retry)."""

    @abstractmethod
    def heartbeat_run(self, run_id: int) -> None:
        """Mark a running run as alive now."""

    @abstractmethod
    def fail_stale_runs(self, job_id: int, older_than_s: float) -> list[RunRecord]:
        """Mark ``running`` runs whose heartbeat is older than ``older_than_s`` as failed
        (their worker died); returns them."""

    # -- runs -----------------------------------------------------------------------------------
    @abstractmethod
    def start_run(
        self,
        job_id: int,
        kind: str,
        family: str,
        params: dict[str, Any],
        trial_number: int | None = None,
        worker: str | None = None,
    ) -> RunRecord:
        """Record a ``running`` run (a trial, or the ensemble) of a job. A second run with the same
        (job, trial number) is refused with ``StoreConflict``: a redelivered trial is not counted twice."""

    @abstractmethod
    def finish_run(self, run_id: int, result: RunResult) -> RunRecord:
        """Write a run's outcome (status, scores, timings, artifacts, error) and stamp
        ``finished_at``; ``NotFound`` for an unknown run."""

    @abstractmethod
    def set_run_holdout(self, run_id: int, holdout_score: float) -> None:
        """Record the holdout score of a run the finalizer refit; ``NotFound`` for an unknown run."""

    @abstractmethod
    def get_run(self, run_id: int) -> RunRecord:
        """The run with this id; ``NotFound`` otherwise."""

    @abstractmethod
    def list_runs(self, job_id: int) -> list[RunRecord]:
        """Every run of a job, in the order they started (empty for an unknown job)."""

    # -- metrics --------------------------------------------------------------------------------
    @abstractmethod
    def add_metrics(self, metrics: Sequence[NewMetric]) -> None:
        """Record metric values (fold scores, learning curves, holdout metrics) in one transaction."""

    @abstractmethod
    def list_metrics(self, *, run_id: int | None = None, model_version_id: int | None = None) -> list[MetricRecord]:
        """The metrics of a run or of a model version (both filters apply when both are given), in
        the order they were added."""

    # -- model versions -------------------------------------------------------------------------
    @abstractmethod
    def create_model_version(self, new: NewModelVersion) -> ModelVersionRecord:
        """Register the next version number of ``new.model_name``; one per job (StoreConflict)."""

    @abstractmethod
    def get_model_version(self, version_id: int) -> ModelVersionRecord:
        """The model version with this id; ``NotFound`` otherwise."""

    @abstractmethod
    def find_model_version(self, model_name: str, version: int) -> ModelVersionRecord:
        """Version number ``version`` of ``model_name``; ``NotFound`` otherwise."""

    @abstractmethod
    def list_model_versions(self, model_name: str | None = None) -> list[ModelVersionRecord]:
        """Versions by model name, then version number, of one model when ``model_name`` is given."""

    @abstractmethod
    def version_for_job(self, job_id: int) -> ModelVersionRecord | None:
        """The version a job registered, or None (it has not, yet)."""

    # -- aliases (the registry) -----------------------------------------------------------------------
    @abstractmethod
    def move_alias(
        self,
        model_name: str,
        alias: str,
        version_id: int | None,
        *,
        actor: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AliasEventRecord | None:
        """Point ``alias`` at ``version_id`` (None: the version it pointed to before its last move)
        and record the move, in one transaction serialized per model (a row lock on PostgreSQL, an
        immediate transaction on SQLite), so racing moves never lose an event. Returns the event, or
        None when the alias already points there (nothing moved, nothing recorded). Raises NotFound
        for an unknown version and InputError for a version of another model or no previous one."""

    @abstractmethod
    def get_alias(self, model_name: str, alias: str) -> AliasRecord | None:
        """Where ``model_name@alias`` points, or None when the alias was never set."""

    @abstractmethod
    def list_aliases(self, model_name: str | None = None) -> list[AliasRecord]:
        """Aliases by model name, then alias, of one model when ``model_name`` is given."""

    @abstractmethod
    def list_alias_events(self, model_name: str, alias: str | None = None) -> list[AliasEventRecord]:
        """The audit trail, oldest first."""

    # -- views ----------------------------------------------------------------------------------
    @abstractmethod
    def leaderboard(self, job_id: int) -> list[LeaderboardRow]:
        """Rows of the ``leaderboard`` SQL view for one job, best rank first."""

    @abstractmethod
    def version_summaries(self, model_name: str) -> list[VersionSummary]:
        """Rows of the ``model_version_summary`` SQL view for one model, newest first."""

    # -- lifecycle ------------------------------------------------------------------------------
    # -- monitoring -----------------------------------------------------------------------------
    @abstractmethod
    def put_reference(
        self, version_id: int, reference: dict[str, Any], outlier_uri: str | None, outlier_sha256: str | None
    ) -> ReferenceRecord:
        """Store a version's monitoring reference; a second call for the version replaces it."""

    @abstractmethod
    def get_reference(self, version_id: int) -> ReferenceRecord | None:
        """The version's monitoring reference, or None when none was stored."""

    @abstractmethod
    def add_monitor_run(self, new: NewMonitorRun, features: Sequence[NewMonitorFeature]) -> MonitorRunRecord:
        """Record a monitor run and its per-feature results (one transaction)."""

    @abstractmethod
    def list_monitor_runs(self, model_name: str | None = None, limit: int = 50) -> list[MonitorRunRecord]:
        """Monitor runs, newest first."""

    @abstractmethod
    def monitor_features(self, monitor_run_id: int) -> list[NewMonitorFeature]:
        """A monitor run's per-feature results. Raises NotFound for an unknown run."""

    @abstractmethod
    def model_health(self, model_name: str | None = None) -> list[ModelHealthRow]:
        """Rows of the ``model_health`` view, newest first."""

    # -- prediction log -------------------------------------------------------------------------
    @abstractmethod
    def add_prediction_logs(self, rows: Sequence[NewPredictionLog]) -> None:
        """Append answered rows to the prediction log (one transaction)."""

    @abstractmethod
    def list_prediction_logs(
        self,
        model_name: str,
        *,
        version_id: int | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[PredictionLogRecord]:
        """Logged rows of a model (of one version; answered at or after ``since``), oldest first;
        with ``limit``, the newest ``limit`` of them."""

    @abstractmethod
    def set_labels(self, model_name: str, labels: dict[str, Any]) -> int:
        """Record true labels by row id (every logged row of the model with that id); returns the
        number of logged rows labelled. One transaction."""

    @abstractmethod
    def purge_prediction_logs(self, older_than: datetime) -> int:
        """Delete logged rows answered before ``older_than``; returns how many."""

    @abstractmethod
    def close(self) -> None:
        """Release the connections (the store is not used after)."""
