"""Thin Celery tasks: ids in, a call into :mod:`automl.fleet`, follow-up messages out."""

from __future__ import annotations

from functools import cache
from typing import Any

from celery import shared_task

from automl.fleet import DEFAULT_PARALLEL, Dispatch


@cache
def _context() -> tuple[Any, Any, str]:
    """The worker process's store and artifact store (opened once per process, not at import)."""
    from automl.artifacts import ArtifactStore
    from automl.config import load_settings
    from automl.store import open_store

    settings = load_settings()
    return open_store(settings.database_url), ArtifactStore(settings.artifact_root), settings.database_url


def _dispatch() -> Dispatch:
    return Dispatch(run_trials=lambda job_id: run_trials.delay(job_id), finalize=lambda job_id: finalize.delay(job_id))


@shared_task(name="automl.start_job")
def start_job(job_id: int, parallel: int = DEFAULT_PARALLEL) -> str:
    from automl import fleet

    store, artifacts, _ = _context()
    return fleet.start(store, artifacts, job_id, _dispatch(), parallel)


@shared_task(name="automl.run_trials")
def run_trials(job_id: int) -> str:
    from automl import fleet

    store, artifacts, url = _context()
    return fleet.run_trials(store, artifacts, job_id, url, _dispatch())


@shared_task(name="automl.finalize")
def finalize(job_id: int) -> str:
    from automl import fleet

    store, artifacts, _ = _context()
    return fleet.finalize(store, artifacts, job_id)
