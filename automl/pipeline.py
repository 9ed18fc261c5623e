"""The spine of a job: one function per step, each taking ids and reading/writing the store.

``automl run`` calls :func:`run_job`, which calls the steps in order in one process; a worker can
call any step on its own, because each one rebuilds what it needs from the store:

    submit_job → start_job → tune_job → finalize_job
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from automl.artifacts import ArtifactStore
from automl.errors import AutomlError
from automl.spec import JobSpec, LoadedSpec
from automl.store.base import Store
from automl.store.records import (
    JobRecord,
    NewJob,
)


@dataclass(frozen=True)
class JobContext:
    """Everything a step needs, rebuilt deterministically from the job's id."""

    job: JobRecord
    spec: JobSpec
    data: Any  # automl.training.JobData (imported lazily: it loads scikit-learn)
    families: list[str]


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return os.environ.get("USER", "unknown")


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


# -- step 1: submit -------------------------------------------------------------------------------


def submit_job(
    store: Store,
    artifacts: ArtifactStore,
    loaded: LoadedSpec,
    *,
    time_s: float | None = None,
    trials: int | None = None,
    submitted_by: str | None = None,
) -> JobRecord:
    """Register the dataset (by content, into the artifact store) and write a ``queued`` job."""
    from automl.datasets import check_target, load_registered, load_table, register_table
    from automl.metrics import DEFAULT_METRIC, get_metric
    from automl.profile import resolve_task
    from automl.spec import spec_hash

    spec = loaded.spec
    if time_s is not None or trials is not None:
        budget = spec.budget.model_copy(
            update={k: v for k, v in {"time_s": time_s, "trials": trials}.items() if v is not None}
        )
        spec = spec.model_copy(update={"budget": budget})
    path = loaded.dataset_path()
    if path is not None:
        table = load_table(path, spec.dataset.format)
        dataset, _ = register_table(store, artifacts, table)
        frame = table.frame
    else:
        dataset = store.get_dataset(int(spec.dataset.id or 0))
        frame = load_registered(dataset, artifacts)
    ds = spec.dataset
    check_target(frame, ds.target, spec.task, list(ds.drop), ds.id_column)
    task = resolve_task(frame[ds.target], spec.task)
    document = spec.model_dump(mode="json")
    metric = spec.metric or DEFAULT_METRIC[task]
    return store.create_job(
        NewJob(
            name=spec.name,
            spec=document,
            spec_hash=spec_hash(spec),
            dataset_id=dataset.id,
            task=task,
            metric=metric,
            greater_is_better=get_metric(metric).greater_is_better,
            model_name=spec.model_name,
            seed=spec.seed,
            submitted_by=submitted_by or _user(),
            time_budget_s=spec.budget.time_s,
            trial_budget=spec.budget.trials,
        )
    )


# -- step 2: start --------------------------------------------------------------------------------


def load_context(store: Store, artifacts: ArtifactStore, job_id: int) -> JobContext:
    """Rebuild a job's data, features and candidates from the store (deterministic)."""
    from automl.candidates import SelectionContext, select_candidates
    from automl.datasets import load_registered
    from automl.preprocessing import plan_features
    from automl.profile import profile_frame, with_target
    from automl.training import prepare_data

    job = store.get_job(job_id)
    spec = JobSpec.model_validate(job.spec)
    dataset = store.get_dataset(job.dataset_id)
    frame = load_registered(dataset, artifacts)
    ds = spec.dataset
    profile = with_target(profile_frame(frame), frame, ds.target, job.task)
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
        n_jobs=spec.n_jobs,
        scheme=spec.cv.scheme,
        time_budget_s=job.time_budget_s,
        id_column=ds.id_column,
    )
    categorical = sum(1 for _, kind in plan.features if kind == "categorical")
    ctx = SelectionContext(
        task=job.task,
        rows=len(data.y),
        features=len(plan.features),
        categorical=categorical,
        time_budget_s=job.time_budget_s,
    )
    choices = select_candidates(ctx, spec.include(), spec.exclude())
    families = [c.family for c in choices if c.selected]
    if job.selection is None:
        from dataclasses import asdict

        job = store.update_job(
            job_id,
            selection=[asdict(c) for c in choices],
            profile={**profile.to_dict(), "dropped": plan.dropped, "validation": data.validation.to_dict()},
            environment=environment(),
        )
    return JobContext(job, spec, data, families)


def start_job(store: Store, artifacts: ArtifactStore, job_id: int) -> JobContext:
    """Claim a queued job (``running``), then build its context and record selection and profile."""
    from automl.tuning import study_name

    store.claim_job(job_id)
    ctx = load_context(store, artifacts, job_id)
    if ctx.job.study_name is None:
        store.update_job(job_id, study_name=study_name(job_id))
    return ctx


# -- step 3: tune ---------------------------------------------------------------------------------


def wall_end_of(job: JobRecord) -> float | None:
    """The job's time wall as a ``time.monotonic()`` instant (its budget counts from its start)."""
    if job.time_budget_s is None or job.started_at is None:
        return None
    from datetime import timedelta

    end = job.started_at + timedelta(seconds=job.time_budget_s)
    return time.monotonic() + (end - datetime.now(UTC)).total_seconds()


LEASE_S = 60.0  # a running trial whose worker has not heartbeated for this long is failed


def tune_job(
    store: Store,
    artifacts: ArtifactStore,
    ctx: JobContext,
    database_url: str,
    on_progress: Callable[[Any], None] | None = None,
    *,
    stop_at: float | None = None,
    worker: str | None = None,
    lease_s: float = LEASE_S,
) -> Any:
    """Run trials into the job's one study until its budget is spent (or, for a worker, until
    ``stop_at``). Safe to call from many processes at once: they share the study and the counters."""
    from automl.portfolio import enqueue_first
    from automl.tuning import TuneLimits, TuneProgress, open_study, recover_stale, tune

    spec = ctx.spec
    job = store.get_job(ctx.job.id)
    study = open_study(database_url, job.id, spec.seed, ctx.data.metric)
    enqueue_first(study, job.task, ctx.families)
    recover_stale(study, store, job.id, lease_s)
    from automl.training import TF_IMPORT_S

    extra = TF_IMPORT_S if "mlp" in ctx.families else 0.0
    limits = TuneLimits(wall_end_of(job), spec.budget.trials, spec.budget.trial_time_s, spec.ensemble.max_size, extra)
    progress = TuneProgress(time.monotonic(), spec.budget.time_s)
    return tune(study, ctx.data, ctx.families, store, artifacts, job.id, limits, progress, on_progress, worker, stop_at)


# -- step 4: finalize (automl.finalize) ------------------------------------------------------------


def finalize_job(store: Store, artifacts: ArtifactStore, ctx: JobContext, wall_end: float | None) -> JobRecord:
    """Ensemble, refit, calibrate, register the version, apply the promotion policy: see
    :mod:`automl.finalize`."""
    from automl.finalize import finalize_job as finalize

    return finalize(store, artifacts, ctx, wall_end)


# -- the local runner -----------------------------------------------------------------------------


def run_job(
    store: Store,
    artifacts: ArtifactStore,
    job_id: int,
    database_url: str,
    on_progress: Callable[[Any], None] | None = None,
    clock_started: datetime | None = None,
) -> JobRecord:
    """Run every step of a queued job in this process. Failures end the job ``failed`` with a code.

    ``clock_started`` (the start of the user's command) makes the time budget count from then
    instead of from the job's claim, so that loading and registering the data are inside it."""
    started = time.monotonic()
    if clock_started is not None:
        started -= max(0.0, (datetime.now(UTC) - clock_started).total_seconds())
    try:
        ctx = start_job(store, artifacts, job_id)
        if clock_started is not None:
            store.update_job(job_id, started_at=clock_started)
        budget = ctx.spec.budget.time_s
        tune_started = time.monotonic()
        progress = tune_job(store, artifacts, ctx, database_url, on_progress)
        tuned = time.monotonic()
        if store.get_job(job_id).cancel_requested:
            return store.finish_job(job_id, "cancelled", "CANCELLED", "cancelled while running")
        if not store.claim_finalize(job_id):
            return store.get_job(job_id)  # another process is finalizing it
        job = finalize_job(store, artifacts, ctx, wall_end_of(store.get_job(job_id)))
        ended = time.monotonic()
        timing = {
            "elapsed_s": round(ended - started, 3),
            "budget_s": budget,
            "prepare_s": round(tune_started - started, 3),
            "tuning_s": round(tuned - tune_started, 3),
            "finalize_s": round(ended - tuned, 3),
            "overrun_s": round(max(0.0, ended - started - budget), 3) if budget else None,
        }
        store.update_job(
            job_id,
            summary={
                **(job.summary or {}),
                "timing": timing,
                "trials_run": progress.done + progress.failed + progress.pruned,
            },
        )
        return store.finish_job(job_id, "succeeded")
    except AutomlError as exc:
        store.finish_job(job_id, "failed", exc.code, str(exc))
        raise
    except BaseException as exc:
        code = "INTERRUPTED" if isinstance(exc, KeyboardInterrupt) else "INTERNAL_ERROR"
        store.finish_job(
            job_id, "failed" if code != "INTERRUPTED" else "cancelled", code, f"{type(exc).__name__}: {exc}"
        )
        raise


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
