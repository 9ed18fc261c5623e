"""The spine of a job: one function per step, each taking ids and reading/writing the store.

``automl run`` calls :func:`run_job`, which calls the steps in order in one process; a worker can
call any step on its own, because each one rebuilds what it needs from the store:

    submit_job → start_job → tune_job → finalize_job

The job's context (data, folds, candidates, wall clock) is rebuilt by :mod:`automl.context`;
finalizing is :mod:`automl.finalize`, promotion :mod:`automl.promotion`. The imports inside the
steps load pandas, scikit-learn and Optuna only when a step runs: the CLI imports this module for
commands (``automl jobs list``) that need none of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from automl.artifacts import ArtifactStore
from automl.context import JobContext, load_context, wall_end_of
from automl.errors import AutomlError, JobNotResumable, interrupted
from automl.spec import LoadedSpec, spec_hash
from automl.store.base import Store
from automl.store.records import JobRecord, NewJob, RunResult


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return os.environ.get("USER", "unknown")


# -- step 1: submit -------------------------------------------------------------------------------


def submit_job(
    store: Store,
    artifacts: ArtifactStore,
    loaded: LoadedSpec,
    *,
    submitted_by: str | None = None,
) -> JobRecord:
    """Register the dataset (by content, into the artifact store) and write a ``queued`` job.
    Command-line overrides are applied to ``loaded`` before (:meth:`LoadedSpec.with_overrides`)."""
    from automl.datasets import check_target, check_width, load_registered, load_table, register_table
    from automl.metrics import DEFAULT_METRIC, get_metric
    from automl.profile import resolve_task

    spec = loaded.spec
    path = loaded.dataset_path()
    ds = spec.dataset
    if path is not None:
        # The table the spec was checked against, when it was (read once per submission).
        table = loaded.table if loaded.table is not None else load_table(path, spec.dataset.format)
        # Checked before the table is registered: a spec its data cannot serve leaves nothing behind.
        check_width(table.frame, list(ds.drop), spec.budget.time_s)
        check_target(table.frame, ds.target, spec.task, list(ds.drop), ds.id_column, table.profile)
        dataset, _ = register_table(store, artifacts, table)
        frame = table.frame
    else:
        dataset = store.get_dataset(int(spec.dataset.id or 0))
        frame = load_registered(dataset, artifacts)
        check_width(frame, list(ds.drop), spec.budget.time_s)
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


def start_job(store: Store, artifacts: ArtifactStore, job_id: int) -> JobContext:
    """Claim a queued job (``running``), then build its context and record selection and profile."""
    from automl.tuning import study_name

    store.claim_job(job_id)
    ctx = load_context(store, artifacts, job_id)
    if ctx.job.study_name is None:
        store.update_job(job_id, study_name=study_name(job_id))
    return ctx


# -- step 3: tune ---------------------------------------------------------------------------------


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
    should_stop: Callable[[], bool] | None = None,
    parallel: int = 1,
    threads: int | None = None,
) -> Any:
    """Run trials into the job's one study until its budget is spent (or, for a worker, until
    ``stop_at``). Safe to call from many processes at once: they share the study and the counters.
    ``parallel`` trials run at once in this process, each on ``threads`` threads (default: the
    context's)."""
    from automl.portfolio import enqueue_first
    from automl.tuning import TuneLimits, TuneProgress, open_study, recover_stale, tune
    from automl.warmstart import find_warm_start

    spec = ctx.spec
    job = store.get_job(ctx.job.id)
    study = open_study(database_url, job.id, spec.seed, ctx.data.metric)
    warm = None if study.trials else find_warm_start(store, job, list(ctx.data.plan.features), ctx.families)
    if enqueue_first(study, job.task, ctx.families, warm.entries if warm else None) and warm is not None:
        store.merge_job_summary(job.id, {"warm_start": warm.to_dict()})
    recover_stale(study, store, job.id, lease_s)
    from automl.training import TF_IMPORT_S

    extra = TF_IMPORT_S if "mlp" in ctx.families else 0.0
    # The clock is the job's: its wall (time_budget_s, extended by a resume) and its trial cap.
    limits = TuneLimits(wall_end_of(job), job.trial_budget, spec.budget.trial_time_s, spec.ensemble.max_size, extra)
    progress = TuneProgress(time.monotonic(), job.time_budget_s)
    data = ctx.data
    if threads is not None:  # trials on a share of the cores; the final fits on the context's
        data = dataclasses.replace(ctx.data, n_jobs=threads, trial_threads=threads, final_threads=ctx.data.n_jobs)
    return tune(
        study, data, ctx.families, store, artifacts, job.id, limits, progress, on_progress, worker, stop_at,
        should_stop, parallel,
    )  # fmt: skip


# -- step 4: finalize (automl.finalize) ------------------------------------------------------------


def finalize_job(store: Store, artifacts: ArtifactStore, ctx: JobContext, wall_end: float | None) -> JobRecord:
    """Ensemble, refit, calibrate, register the version, apply the promotion policy: see
    :mod:`automl.finalize`."""
    from automl.finalize import finalize_job as finalize

    return finalize(store, artifacts, ctx, wall_end)


# -- the local runner -----------------------------------------------------------------------------


class StopRequest:
    """What the user asked of a running ``automl run`` with Ctrl-C: the first press finishes the
    job with the trials done (ensemble and version as usual), the second cancels it."""

    def __init__(self) -> None:
        self.finish = False

    def __call__(self) -> bool:
        return self.finish


HEARTBEAT_S = 5.0  # how often an in-process runner stamps its job (a stale stamp: the process died)


def process_lost(job: JobRecord, lease_s: float = LEASE_S) -> bool:
    """A running job run in-process whose process stopped stamping it for ``lease_s``: it died."""
    if job.status != "running" or job.heartbeat_at is None:
        return False
    return (datetime.now(UTC) - job.heartbeat_at).total_seconds() > lease_s


@contextmanager
def job_heartbeat(store: Store, job_id: int, every_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Stamp the job's heartbeat from a background thread while the block runs."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every_s):
            with contextlib.suppress(Exception):  # a store hiccup: the next beat tries again
                store.heartbeat_job(job_id)

    store.heartbeat_job(job_id)
    thread = threading.Thread(target=beat, name=f"automl-job-{job_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=every_s + 1.0)


def run_job(
    store: Store,
    artifacts: ArtifactStore,
    job_id: int,
    database_url: str,
    on_progress: Callable[[Any], None] | None = None,
    clock_started: datetime | None = None,
    stop: StopRequest | None = None,
    lease_s: float = LEASE_S,
    parallel: int | None = None,
) -> JobRecord:
    """Run every step of a queued job in this process. Failures end the job ``failed`` with a code.

    ``clock_started`` (the start of the user's command) makes the time budget count from then
    instead of from the job's claim, so that loading and registering the data are inside it.
    ``stop`` turning true ends tuning early and finishes the job with the trials done; a
    ``KeyboardInterrupt`` cancels it. The job is heartbeated while this runs (see :func:`resume_job`).
    ``parallel`` trials run at once (default: :func:`automl.tuning.trials_at_once`)."""
    started = time.monotonic()
    if clock_started is not None:
        started -= max(0.0, (datetime.now(UTC) - clock_started).total_seconds())
    with _ends_job(store, job_id, database_url):
        ctx = start_job(store, artifacts, job_id)
        if clock_started is not None:
            store.update_job(job_id, started_at=clock_started)
        with job_heartbeat(store, job_id, min(HEARTBEAT_S, lease_s / 4)):
            return _tune_and_finalize(store, artifacts, ctx, database_url, on_progress, started, stop, parallel)
    raise AssertionError("unreachable")  # pragma: no cover  (_ends_job re-raises)


def _cancel_job(store: Store, job_id: int, database_url: str) -> None:
    for run in store.list_runs(job_id):  # this process ran them all: none is left running
        if run.status == "running":
            store.finish_run(run.id, RunResult(status="cancelled", error_code="CANCELLED"))
    # Nor any trial of its study: the press may land between a run's end and the study's tell,
    # or between drawing a trial and keeping hold of it.
    from automl.tuning import fail_zombie_trials, load_job_study

    with contextlib.suppress(Exception):
        study = load_job_study(database_url, job_id)
        if study is not None:
            fail_zombie_trials(study, store, job_id, 0.0)
    store.finish_job(job_id, "cancelled", "CANCELLED", "cancelled by the user (Ctrl-C); no version was registered")


@contextmanager
def _ends_job(store: Store, job_id: int, database_url: str) -> Iterator[None]:
    """A failure ends the job ``failed`` with its code; Ctrl-C (KeyboardInterrupt, or an error
    raised while handling one: :func:`automl.errors.interrupted`) cancels it and is raised as KeyboardInterrupt."""
    try:
        yield
    except KeyboardInterrupt:
        _cancel_job(store, job_id, database_url)
        raise
    except BaseException as exc:
        if interrupted(exc):
            _cancel_job(store, job_id, database_url)
            raise KeyboardInterrupt from exc
        if isinstance(exc, AutomlError):
            store.finish_job(job_id, "failed", exc.code, str(exc))
        else:
            store.finish_job(job_id, "failed", "INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
        raise


def _tune_and_finalize(
    store: Store,
    artifacts: ArtifactStore,
    ctx: JobContext,
    database_url: str,
    on_progress: Callable[[Any], None] | None,
    started: float,
    stop: StopRequest | None,
    parallel: int | None,
) -> JobRecord:
    from automl.config import available_cores
    from automl.tuning import trials_at_once

    job_id = ctx.job.id
    job = store.get_job(job_id)
    budget = job.time_budget_s
    at_once, threads = trials_at_once(ctx.spec.n_jobs, job.trial_budget, available_cores(), parallel)
    tune_started = time.monotonic()
    progress = None
    if job.finalize_claimed_at is None:  # a resumed job may have died finalizing
        progress = tune_job(
            store, artifacts, ctx, database_url, on_progress, should_stop=stop, parallel=at_once, threads=threads
        )
        if store.get_job(job_id).cancel_requested:
            return store.finish_job(job_id, "cancelled", "CANCELLED", "cancelled while running")
        if not store.claim_finalize(job_id):
            return store.get_job(job_id)  # another process is finalizing it
    tuned = time.monotonic()
    # Refits are estimated from trials that ran on ``threads`` threads each.
    final_ctx = dataclasses.replace(ctx, data=dataclasses.replace(ctx.data, trial_threads=threads))
    finalize_job(store, artifacts, final_ctx, wall_end_of(store.get_job(job_id)))
    ended = time.monotonic()
    timing = {
        "elapsed_s": round(ended - started, 3),
        "budget_s": budget,
        "prepare_s": round(tune_started - started, 3),
        "tuning_s": round(tuned - tune_started, 3),
        "finalize_s": round(ended - tuned, 3),
        "overrun_s": round(max(0.0, ended - started - budget), 3) if budget else None,
    }
    summary: dict[str, Any] = {"timing": timing}
    if progress is not None:
        summary["trials_run"] = progress.done + progress.failed + progress.pruned
        summary["trials_at_once"] = {"trials": at_once, "threads_each": threads}
    if stop is not None and stop.finish:
        summary["stopped_early"] = "the user pressed Ctrl-C: tuning ended early, the job finished with the trials done"
    store.merge_job_summary(job_id, summary)
    return store.finish_job(job_id, "succeeded")


def resume_job(
    store: Store,
    artifacts: ArtifactStore,
    job_id: int,
    database_url: str,
    on_progress: Callable[[Any], None] | None = None,
    time_s: float | None = None,
    stop: StopRequest | None = None,
    lease_s: float = LEASE_S,
    parallel: int | None = None,
) -> JobRecord:
    """Continue, in this process, a job whose in-process runner died (killed, a reboot): its
    heartbeat is older than ``lease_s``. Every run already recorded and the study are kept; the
    runs the dead process left ``running`` are failed (``WORKER_LOST``) with their trials, the
    trial slots they held are given back, and the job gets the time it had not yet used (``time_s``
    overrides it). A queued job is simply run."""
    from automl.tuning import fail_zombie_trials, open_study, recover_stale, study_name

    job = store.get_job(job_id)
    if job.status == "queued":
        return run_job(
            store, artifacts, job_id, database_url, on_progress, stop=stop, lease_s=lease_s, parallel=parallel
        )
    if job.status != "running":
        raise JobNotResumable(
            f"job {job_id} already ended: {job.status}",
            hint="only a queued job or a running one whose process died can be resumed; run the spec again "
            "for a new job",
        )
    last = job.heartbeat_at or job.started_at
    if not store.claim_stalled_job(job_id, lease_s):
        age = (datetime.now(UTC) - last).total_seconds() if last else 0.0
        raise JobNotResumable(
            f"job {job_id} is still running: its process stamped it {age:.0f} s ago (a process is taken "
            f"for dead after {lease_s:.0f} s without a stamp)",
            hint="wait for it, or cancel it with `automl cancel JOB_ID`",
            code="JOB_ALIVE",
        )
    now = datetime.now(UTC)
    used = max(0.0, ((last or now) - (job.started_at or now)).total_seconds())
    with _ends_job(store, job_id, database_url):
        budget = job.time_budget_s
        if time_s is not None:
            budget = used + time_s
        elif budget is not None and budget - used < 0.25 * budget:
            budget = used + 0.25 * budget  # what was left would not even refit: a quarter more
        left = None if budget is None else round(budget - used, 1)
        resumes = [*(job.summary or {}).get("resumes", []), {"at": now.isoformat(), "used_s": round(used, 1),
                                                            "left_s": left}]  # fmt: skip
        store.update_job(job_id, started_at=now - timedelta(seconds=used), time_budget_s=budget)
        store.merge_job_summary(job_id, {"resumes": resumes})
        ctx = load_context(store, artifacts, job_id)
        if job.study_name is None:
            store.update_job(job_id, study_name=study_name(job_id))
        study = open_study(database_url, job_id, ctx.spec.seed, ctx.data.metric)
        recover_stale(study, store, job_id, 0.0)  # the dead process's runs: nothing will finish them
        fail_zombie_trials(study, store, job_id, 0.0)  # and the trials it drew but never ran
        counters = store.job_counters(job_id)
        ran = sum(1 for r in store.list_runs(job_id) if r.kind == "trial")
        store.reset_trial_slots(job_id, counters.trials_started, ran)
        if job.finalize_claimed_at is not None:
            store.release_finalize(job_id)
            store.claim_finalize(job_id)  # this process finalizes it
        with job_heartbeat(store, job_id, min(HEARTBEAT_S, lease_s / 4)):
            return _tune_and_finalize(
                store, artifacts, ctx, database_url, on_progress, time.monotonic(), stop, parallel
            )
    raise AssertionError("unreachable")  # pragma: no cover  (_ends_job re-raises)
