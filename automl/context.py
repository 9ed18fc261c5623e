"""A job's context: everything a step needs, rebuilt deterministically from the job's id (its
spec, data, features, validation folds and candidates), the job's wall clock, and loading a
registered model. Every step of :mod:`automl.pipeline`, the fleet's tasks and the report read a job
through here.
"""

from __future__ import annotations

import platform
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from automl.artifacts import ArtifactStore
from automl.spec import JobSpec
from automl.store.base import Store
from automl.store.records import JobRecord


@dataclass(frozen=True)
class JobContext:
    """Everything a step needs, rebuilt deterministically from the job's id."""

    job: JobRecord
    spec: JobSpec
    data: Any  # automl.training.JobData (imported lazily: it loads scikit-learn)
    families: list[str]


def environment() -> dict[str, str]:
    """Versions recorded on every job, so a model can be traced to what built it."""
    from importlib import metadata

    versions = {"python": platform.python_version(), "host": socket.gethostname()}
    for dist in ("automl", "scikit-learn", "xgboost", "optuna", "pandas", "numpy", "sqlalchemy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def load_context(store: Store, artifacts: ArtifactStore, job_id: int, threads: int | None = None) -> JobContext:
    """Rebuild a job's data, features and candidates from the store (deterministic). ``threads``
    (a worker's share of its machine's cores) replaces the spec's ``n_jobs`` of -1 (every core)."""
    from automl.candidates import SelectionContext, select_candidates
    from automl.datasets import load_registered, profile_of
    from automl.preprocessing import plan_features
    from automl.profile import with_target
    from automl.training import prepare_data

    job = store.get_job(job_id)
    spec = JobSpec.model_validate(job.spec)
    dataset = store.get_dataset(job.dataset_id)
    frame = load_registered(dataset, artifacts)
    ds = spec.dataset
    profile = with_target(profile_of(frame, dataset.fingerprint), frame, ds.target, job.task)
    plan = plan_features(profile, ds.target, list(ds.drop), list(profile.leaks), ds.id_column)
    data = prepare_data(
        frame,
        target=ds.target,
        task=job.task,
        metric=job.metric,
        plan=plan,
        profile=profile,
        holdout_fraction=spec.holdout_fraction,
        folds=spec.cv.folds,
        seed=spec.seed,
        n_jobs=threads if threads is not None and spec.n_jobs == -1 else spec.n_jobs,
        scheme=spec.cv.scheme,
        # The plan (validation scheme, candidates) follows the budget the job was submitted with, in
        # its spec; a resume that extends the wall (jobs.time_budget_s) must not change the folds
        # the trials already run were scored on.
        time_budget_s=spec.budget.time_s,
        id_column=ds.id_column,
    )
    categorical = sum(1 for _, kind in plan.features if kind == "categorical")
    ctx = SelectionContext(
        task=job.task,
        rows=len(data.y),
        features=len(plan.features),
        categorical=categorical,
        time_budget_s=spec.budget.time_s,
    )
    choices = select_candidates(ctx, spec.include(), spec.exclude())
    families = [c.family for c in choices if c.selected]
    if job.selection is None:
        job = store.update_job(
            job_id,
            selection=[asdict(c) for c in choices],
            profile={**profile.to_dict(), "dropped": plan.dropped, "validation": data.validation.to_dict()},
            environment=environment(),
        )
    return JobContext(job, spec, data, families)


def wall_end_of(job: JobRecord) -> float | None:
    """The job's time wall as a ``time.monotonic()`` instant (its budget counts from its start)."""
    if job.time_budget_s is None or job.started_at is None:
        return None
    end = job.started_at + timedelta(seconds=job.time_budget_s)
    return time.monotonic() + (end - datetime.now(UTC)).total_seconds()


def load_model(store: Store, artifacts: ArtifactStore, version_id: int) -> Any:
    """Load a model version's estimator after verifying its checksum."""
    version = store.get_model_version(version_id)
    return artifacts.get_object(version.artifact_uri, version.artifact_sha256)


def load_evaluation_model(store: Store, artifacts: ArtifactStore, version_id: int) -> Any:
    """The fit that produced a version's holdout score (it never saw the holdout rows): the
    evaluation artifact when the registered one was refit on every row, else the artifact itself."""
    version = store.get_model_version(version_id)
    if version.evaluation_uri:
        return artifacts.get_object(version.evaluation_uri, version.evaluation_sha256 or "")
    return artifacts.get_object(version.artifact_uri, version.artifact_sha256)
