"""The worker fleet's steps: what each Celery task does, as plain functions over the store.

Tasks take ids only and re-read state. Every step is safe to run twice (Celery with Redis
delivers at least once): a job is claimed by one conditional UPDATE, trials are counted by
another, the finalizing step is claimed by a third, and the database allows one model version
per job. A worker's share of tuning is a time slice; a task whose slice ends re-enqueues itself,
so no task runs anywhere near the broker's visibility timeout.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from automl.artifacts import ArtifactStore
from automl.errors import AutomlError, StoreError
from automl.store.base import Store

SLICE_S = 300.0  # a trial task hands over after this long; its next copy goes back on the queue
LEASE_S = 60.0  # a running trial with no heartbeat for this long lost its worker
LOST_SLOT_GRACE_S = 2.0  # how long a slot counted with no trial drawn for it must stay so to be lost
DEFAULT_PARALLEL = 4


@dataclass(frozen=True)
class Dispatch:
    """How a step asks for the next one (the Celery shell sends messages; tests may call directly)."""

    run_trials: Callable[[int], None]
    finalize: Callable[[int], None]
    check_later: Callable[[int, float], None]  # a run_trials after a delay: settles a job left waiting


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def retryable_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the database cannot be reached right now, not a broken job: a task that
    meets one is retried (StorageInternalError: the study's commit failed, same database)."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import InterfaceError, OperationalError

    from automl.errors import StoreUnavailable

    return (StoreUnavailable, OperationalError, InterfaceError, StorageInternalError)


def start(store: Store, artifacts: ArtifactStore, job_id: int, dispatch: Dispatch, parallel: int) -> str:
    """Claim a queued job, record its selection and profile, create its study, fan out trial tasks.

    A redelivered copy finds the job already running and fans out again, which is harmless: every
    trial task shares the job's counters and study."""
    from automl.pipeline import start_job

    job = store.get_job(job_id)
    if job.status not in ("queued", "running") or job.cancel_requested:
        return job.status
    try:
        start_job(store, artifacts, job_id)
    except StoreError:
        raise  # the task retries it once the store is back
    except AutomlError as exc:
        store.finish_job(job_id, "failed", exc.code, str(exc))
        return "failed"
    except Exception as exc:
        if isinstance(exc, retryable_errors()):
            raise
        # Anything else would leave the job `running` with no one to run it: end it with the error.
        store.finish_job(job_id, "failed", "INTERNAL_ERROR", f"starting the job failed: {type(exc).__name__}: {exc}")
        return "failed"
    for _ in range(max(1, parallel)):
        dispatch.run_trials(job_id)
    return "running"


def _budget_spent(store: Store, job_id: int) -> bool:
    job = store.get_job(job_id)
    if job.trial_budget is not None and job.trials_started >= job.trial_budget:
        return True
    if job.time_budget_s is not None and job.started_at is not None:
        from automl.context import wall_end_of

        wall_end = wall_end_of(job)
        return wall_end is not None and time.monotonic() >= wall_end - 0.05 * job.time_budget_s
    return False


def run_trials(
    store: Store,
    artifacts: ArtifactStore,
    job_id: int,
    database_url: str,
    dispatch: Dispatch,
    slice_s: float = SLICE_S,
    lease_s: float = LEASE_S,
    threads: int | None = None,
) -> str:
    """One worker's share of a job's tuning (each trial on ``threads`` threads when the spec says
    every core: see :func:`automl.context.load_context`). Ends by re-enqueueing itself (slice over, budget
    left), by finishing a cancelled job, or by asking for the finalizing step."""
    from automl.context import load_context
    from automl.pipeline import tune_job

    job = store.get_job(job_id)
    if job.status != "running":
        return job.status
    if not job.cancel_requested:
        ctx = load_context(store, artifacts, job_id, threads)
        stop_at = time.monotonic() + slice_s
        progress = tune_job(store, artifacts, ctx, database_url, stop_at=stop_at, worker=worker_name(), lease_s=lease_s)
        job = store.get_job(job_id)
        # Tuning that stopped at the wall less the finalizing reserve is over: re-enqueueing would
        # only spin until the wall itself, spending the time the finalizing step was given.
        if not job.cancel_requested and not progress.out_of_time and not _budget_spent(store, job_id):
            dispatch.run_trials(job_id)
            return "continued"
    return settle(store, job_id, dispatch, lease_s, database_url)


def settle(store: Store, job_id: int, dispatch: Dispatch, lease_s: float, database_url: str | None = None) -> str:
    """Once no trial of the job is running (live), cancel it or hand it to the one finalizer.

    Runs whose worker stopped heartbeating are failed, and so are their trials in the study, with
    any trial a dead worker had drawn ahead (its slot is given back), and so is a slot it claimed
    without drawing a trial: after the job, the study has no RUNNING trial, and a trial cap that
    such losses left short gets its trials run."""
    from automl.tuning import fail_zombie_trials, load_job_study

    job = store.get_job(job_id)
    if job.status != "running":
        return job.status
    study = load_job_study(database_url, job_id) if database_url else None
    store.fail_stale_runs(job_id, lease_s)
    if study is not None:
        fail_zombie_trials(study, store, job_id, lease_s)
    runs = store.list_runs(job_id)
    if any(r.status == "running" for r in runs) or (study is not None and _drawn_not_started(study)):
        # The task running that trial settles the job when it ends; if its worker died instead,
        # this check comes back after the lease and fails the trial.
        dispatch.check_later(job_id, lease_s)
        return "waiting"
    if job.cancel_requested:
        return _cancelled(store, job_id)
    if job.trial_budget is not None:
        _give_back_lost_slots(store, job_id, study)
    job = store.get_job(job_id)
    if job.trial_budget is not None and job.trials_started < job.trial_budget and not _out_of_time(job):
        dispatch.run_trials(job_id)  # slots given back by lost trials: run them
        return "continued"
    if store.claim_finalize(job_id):  # exactly one caller wins; the others leave it to that one
        dispatch.finalize(job_id)
    return "finalizing"


def _give_back_lost_slots(store: Store, job_id: int, study: Any) -> None:
    """A worker that died between claiming a trial slot and drawing its trial left a slot that no
    run and no study trial stands for. When nothing is running or drawn and the count of trials
    started stays above the trial runs for a grace period (a live worker draws its trial
    milliseconds after its claim), the count is set back to the runs, compare-and-set."""

    def reading() -> tuple[bool, int, int]:
        runs = store.list_runs(job_id)
        busy = any(r.status == "running" for r in runs) or (study is not None and _drawn_not_started(study))
        ran = sum(1 for r in runs if r.kind == "trial")
        return busy, store.job_counters(job_id).trials_started, ran

    first = reading()
    busy, observed, ran = first
    if busy or observed <= ran:
        return
    time.sleep(LOST_SLOT_GRACE_S)
    if reading() == first:
        store.reset_trial_slots(job_id, observed, ran)


def _drawn_not_started(study: Any) -> bool:
    """A trial drawn by a live worker that has not started its run yet (within the lease)."""
    import optuna

    return bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))


def _out_of_time(job: Any) -> bool:
    if job.time_budget_s is None or job.started_at is None:
        return False
    from automl.context import wall_end_of

    wall_end = wall_end_of(job)
    return wall_end is not None and time.monotonic() >= wall_end - 0.05 * job.time_budget_s


def _cancelled(store: Store, job_id: int) -> str:
    store.finish_job(job_id, "cancelled", "CANCELLED", "cancelled while running; no version was registered")
    return "cancelled"


def finalize(store: Store, artifacts: ArtifactStore, job_id: int) -> str:
    """Ensemble, refit, holdout metrics and the one model version; ends the job. Its refits use
    the spec's threads (every core for -1), not a worker's share: the job's trials have ended, and
    a refit on one thread of a model whose trial took a third of the budget rarely fits in what is
    left of it."""
    from automl.context import load_context, wall_end_of
    from automl.pipeline import finalize_job

    job = store.get_job(job_id)
    if job.status != "running":
        return job.status
    if job.cancel_requested:
        return _cancelled(store, job_id)
    ctx = load_context(store, artifacts, job_id)
    try:
        # The job's own wall, as in one process: the workers stopped tuning early enough to leave
        # the reserve for this step; when it starts late, finalizing falls back to a model that
        # needs the least time (a trial's own fit, or the cheapest refit) and says so.
        finalize_job(store, artifacts, ctx, wall_end_of(job))
    except StoreError:
        raise
    except AutomlError as exc:
        store.finish_job(job_id, "failed", exc.code, str(exc))
        return "failed"
    _record_timing(store, job_id)
    store.finish_job(job_id, "succeeded")
    return "succeeded"


def _record_timing(store: Store, job_id: int) -> None:
    job = store.get_job(job_id)
    if job.started_at is None:
        return
    elapsed = (datetime.now(UTC) - job.started_at).total_seconds()
    budget = job.time_budget_s
    timing = {
        "elapsed_s": round(elapsed, 3),
        "budget_s": budget,
        "overrun_s": round(max(0.0, elapsed - budget), 3) if budget else None,
    }
    store.merge_job_summary(job_id, {"timing": timing})


def resume(store: Store, job_id: int, dispatch: Dispatch, parallel: int, start_task: Callable[[int], None]) -> str:
    """Re-enqueue a stuck job: a queued job starts; a running one gets trial tasks or its finalizer."""
    job = store.get_job(job_id)
    if job.status == "queued":
        start_task(job_id)
        return "queued"
    if job.status != "running":
        return job.status
    if job.finalize_claimed_at is not None:
        stale = datetime.now(UTC) - job.finalize_claimed_at > timedelta(minutes=5)
        if stale:
            dispatch.finalize(job_id)
        return "finalizing"
    for _ in range(max(1, parallel)):
        dispatch.run_trials(job_id)
    return "running"
