"""Hyperparameter search: one Optuna study per job, in the same database as the store.

The study name is deterministic (``automl-job-<id>``) and opened with ``load_if_exists=True`` so
a resumed or redelivered job continues its study instead of starting another. Each selected
family's defaults are enqueued first, so a tiny budget still yields a sensible model; then seeded
TPE explores a conditional space (family → its parameters). Fold scores are reported as
intermediate values and a median pruner stops poor trials early.

The time budget is a wall: each trial runs in a child process with a deadline that leaves room
for the final refit, and is killed if it would run past it.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from automl.artifacts import ArtifactStore
from automl.candidates import get_family
from automl.metrics import Metric, is_better
from automl.sandbox import ChildCrashed, ChildError, ChildTimeout, run_in_child
from automl.store.base import Store
from automl.store.records import RunResult
from automl.store.sql import is_sqlite, normalize_url
from automl.training import CANCEL, PRUNE, JobData, cross_validate

FAMILY_PARAM = "family"
SLICE_GRACE_S = 2700.0  # a trial started late in a worker's time slice may run this much past it


def study_name(job_id: int) -> str:
    return f"automl-job-{job_id}"


def open_study(database_url: str, job_id: int, seed: int, metric: Metric) -> optuna.Study:
    """Create or load the job's study (RDB storage in the store's own database)."""
    url = normalize_url(database_url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if is_sqlite(url):
        engine_kwargs["connect_args"] = {"timeout": 30}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=study_name(job_id),
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="maximize" if metric.greater_is_better else "minimize",
        load_if_exists=True,
    )


def enqueue_defaults(study: optuna.Study, families: list[str], task: str) -> None:
    """Queue each family's defaults once (a resumed study already has them)."""
    if study.trials:
        return
    for name in families:
        defaults = get_family(name).defaults(task)
        study.enqueue_trial({FAMILY_PARAM: name, **{f"{name}__{k}": v for k, v in defaults.items()}})


@dataclass
class TuneProgress:
    """What the progress display shows, updated after every trial."""

    started: float
    wall_s: float | None
    done: int = 0
    failed: int = 0
    pruned: int = 0
    best_score: float | None = None
    best_family: str | None = None
    last_family: str | None = None
    scored: list[tuple[float, float]] = field(default_factory=list)  # (cv score, fit seconds)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True)
class TuneLimits:
    wall_end: float | None  # monotonic instant the whole job must end by
    trial_cap: int | None
    trial_time_s: float | None
    ensemble_size: int


def reserve_seconds(progress: TuneProgress, folds: int, limits: TuneLimits, greater_is_better: bool) -> float:
    """Time kept back for the final refit: the refit cost of the best few models, with margin."""
    if limits.wall_end is None or progress.wall_s is None:
        return 0.0
    floor = max(1.0, 0.03 * progress.wall_s)
    if not progress.scored:
        return min(max(floor, 0.10 * progress.wall_s), 0.35 * progress.wall_s)
    ranked = sorted(progress.scored, key=lambda sf: sf[0], reverse=greater_is_better)
    top = [fit for _, fit in ranked[: min(3, limits.ensemble_size)]]
    # A refit sees all K folds' rows where a CV fit saw K-1 of them.
    per_refit = [s / folds * folds / max(folds - 1, 1) for s in top]
    return min(max(floor, 1.5 * sum(per_refit) + 1.0), 0.35 * progress.wall_s)


def _save_oof(artifacts: ArtifactStore, job_id: int, number: int, oof: np.ndarray) -> str:
    import io

    key = f"jobs/{job_id}/oof/trial-{number}.npy"
    buffer = io.BytesIO()
    np.save(buffer, oof, allow_pickle=False)
    artifacts.put_bytes(key, buffer.getvalue())
    return key


def _tell_failed(study: optuna.Study, number: int) -> None:
    """Mark a trial failed in Optuna, unless it is already finished (told by its own worker)."""
    with contextlib.suppress(ValueError, RuntimeError):
        study.tell(number, state=optuna.trial.TrialState.FAIL)


def recover_stale(study: optuna.Study, store: Store, job_id: int, lease_s: float) -> int:
    """Fail the runs (and their Optuna trials) whose worker stopped heartbeating."""
    stale = store.fail_stale_runs(job_id, lease_s)
    for run in stale:
        if run.trial_number is not None:
            _tell_failed(study, run.trial_number)
    return len(stale)


def run_trial(
    study: optuna.Study,
    data: JobData,
    families: list[str],
    store: Store,
    artifacts: ArtifactStore,
    job_id: int,
    deadline: float,
    worker: str,
) -> tuple[str, str, float | None, float]:
    """Ask the study for one configuration, cross-validate it in a child, record the run and tell
    the study. Returns (family, status, cv_score, fit_seconds)."""
    trial = study.ask()
    family = str(trial.suggest_categorical(FAMILY_PARAM, families))
    params = get_family(family).suggest(trial, data.task)
    run = store.start_run(job_id, "trial", family, params, trial_number=trial.number, worker=worker)
    scores: list[float] = []

    def on_fold(message: Any) -> str:
        _, step, score = message
        scores.append(score)
        store.heartbeat_run(run.id)
        if store.get_job(job_id).cancel_requested:
            return CANCEL
        trial.report(float(np.mean(scores)), step)
        return PRUNE if trial.should_prune() else "go"

    started = time.perf_counter()
    try:
        out = run_in_child(
            cross_validate, (data, family, params), deadline, on_fold, on_tick=lambda: store.heartbeat_run(run.id)
        )
    except ChildTimeout as exc:
        result = RunResult(
            status="timeout",
            fold_scores=scores or None,
            error_code="TRIAL_TIMEOUT",
            error_message=str(exc),
            fit_seconds=time.perf_counter() - started,
        )
        store.finish_run(run.id, result)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return family, "timeout", None, 0.0
    except Exception as exc:  # the store or the pipe failed: leave no run "running" if we can help it
        if not isinstance(exc, ChildCrashed | ChildError):
            with contextlib.suppress(Exception):
                failed = RunResult(status="failed", error_code="INTERNAL_ERROR", error_message=repr(exc))
                store.finish_run(run.id, failed)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        code = "TRIAL_CRASHED" if isinstance(exc, ChildCrashed) else "TRIAL_FAILED"
        message = str(exc) if isinstance(exc, ChildCrashed) else f"{exc}\n{exc.trace}"
        store.finish_run(
            run.id,
            RunResult(status="failed", fold_scores=scores or None, error_code=code, error_message=message[-4000:]),
        )
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return family, "failed", None, 0.0
    fold_scores = [float(s) for s in out["fold_scores"]]
    partial = float(np.mean(fold_scores)) if fold_scores else None
    if out["stopped"] == CANCEL:
        store.finish_run(run.id, RunResult(status="cancelled", fold_scores=fold_scores, error_code="CANCELLED"))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return family, "cancelled", None, out["fit_seconds"]
    if out["stopped"] == PRUNE:
        store.finish_run(
            run.id,
            RunResult(status="pruned", fold_scores=fold_scores, fit_seconds=out["fit_seconds"], cv_score=partial),
        )
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return family, "pruned", None, out["fit_seconds"]
    cv = float(np.mean(fold_scores))
    oof_key = _save_oof(artifacts, job_id, trial.number, out["oof"])
    store.finish_run(
        run.id,
        RunResult(
            status="succeeded",
            cv_score=cv,
            cv_std=float(np.std(fold_scores)),
            fold_scores=fold_scores,
            fit_seconds=out["fit_seconds"],
            oof_uri=oof_key,
        ),
    )
    study.tell(trial, cv)
    return family, "succeeded", cv, out["fit_seconds"]


def tune(
    study: optuna.Study,
    data: JobData,
    families: list[str],
    store: Store,
    artifacts: ArtifactStore,
    job_id: int,
    limits: TuneLimits,
    progress: TuneProgress,
    on_progress: Callable[[TuneProgress], None] | None = None,
    worker: str | None = None,
    stop_at: float | None = None,
) -> TuneProgress:
    """Run trials until the job's trial cap (a counter shared by every worker) or its time wall
    (less the refit reserve) is reached, or the job is cancelled. ``stop_at`` ends this caller's
    share early (a worker's time slice) without ending the job."""
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    metric = data.metric
    folds = len(data.folds)
    while True:
        now = time.monotonic()
        if stop_at is not None and now >= stop_at:
            break
        if limits.wall_end is not None:
            tune_end = limits.wall_end - reserve_seconds(progress, folds, limits, metric.greater_is_better)
            if now >= tune_end - 0.25:
                break
        else:
            tune_end = math.inf
        if store.get_job(job_id).cancel_requested:
            break
        if not store.claim_trial_slot(job_id, limits.trial_cap):
            break
        deadline = tune_end
        if limits.trial_time_s is not None:
            deadline = min(deadline, now + limits.trial_time_s)
        if stop_at is not None:
            deadline = min(deadline, stop_at + SLICE_GRACE_S)
        if deadline == math.inf:
            deadline = now + 7 * 24 * 3600.0
        family, status, score, fit_s = run_trial(study, data, families, store, artifacts, job_id, deadline, worker)
        progress.last_family = family
        if status == "succeeded" and score is not None:
            progress.done += 1
            progress.scored.append((score, fit_s))
            if progress.best_score is None or is_better(metric, score, progress.best_score):
                progress.best_score, progress.best_family = score, family
        elif status == "pruned":
            progress.pruned += 1
        elif status == "cancelled":
            break
        else:
            progress.failed += 1
        if on_progress is not None:
            on_progress(progress)
    return progress
