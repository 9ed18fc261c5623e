"""Thin Celery tasks: ids in, a call into :mod:`automl.fleet`, follow-up messages out.

A task that cannot reach the database (a restart, a network blip) is retried with a delay rather
than lost; every step is idempotent, so running part of one twice does no harm.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from celery import shared_task

from automl.fleet import DEFAULT_PARALLEL, Dispatch, retryable_errors
from automl.sandbox import reap_finished

RETRY = {
    "autoretry_for": retryable_errors(),
    "retry_kwargs": {"max_retries": 60, "countdown": 5},
}


@cache
def _context() -> tuple[Any, Any, Any]:
    """The worker process's settings, store and artifact store (opened on first use, not at import)."""
    from automl.artifacts import ArtifactStore
    from automl.config import load_settings
    from automl.store import open_store

    settings = load_settings()
    return settings, open_store(settings.database_url), ArtifactStore(settings.artifact_root)


def _dispatch() -> Dispatch:
    return Dispatch(
        run_trials=lambda job_id: run_trials.delay(job_id),
        finalize=lambda job_id: finalize.delay(job_id),
        check_later=lambda job_id, delay: run_trials.apply_async((job_id,), countdown=delay),
    )


@shared_task(name="automl.start_job", **RETRY)
def start_job(job_id: int, parallel: int = DEFAULT_PARALLEL) -> str:
    from automl import fleet

    _, store, artifacts = _context()
    return fleet.start(store, artifacts, job_id, _dispatch(), parallel)


@shared_task(name="automl.run_trials", **RETRY)
def run_trials(job_id: int) -> str:
    from automl import fleet

    settings, store, artifacts = _context()
    try:
        return fleet.run_trials(
            store, artifacts, job_id, settings.database_url, _dispatch(),
            settings.trial_slice_s, settings.trial_lease_s, settings.worker_threads,
        )  # fmt: skip
    finally:
        reap_finished()  # the last trial's process is not left defunct until the next task


@shared_task(name="automl.finalize", **RETRY)
def finalize(job_id: int) -> str:
    from automl import fleet

    _, store, artifacts = _context()
    try:
        return fleet.finalize(store, artifacts, job_id)
    finally:
        reap_finished()
