"""Hyperparameter search: one Optuna study per job, in the same database as the store.

The study name is deterministic (``automl-job-<id>``) and opened with ``load_if_exists=True`` so
a resumed or redelivered job continues its study instead of starting another. A portfolio comes
first (each selected family's defaults, cheap and strong families first, then published
configurations: :mod:`automl.portfolio`), so a tiny budget still yields a sensible model; then
each trial's family is drawn by its estimated cost for improvement (:mod:`automl.family_choice`,
FLAML's learner selection) and seeded TPE draws that family's parameters. Fold scores are reported as
intermediate values and a median pruner stops trials that are poor for their family early.

The time budget is a wall: each trial runs in a child process with a deadline that leaves room
for finalizing, and no more than :data:`TRIAL_SHARE` of the tuning time left, and is killed if it
would run past it (boosted trees and nets stop themselves at their share first).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import optuna

from automl.artifacts import ArtifactStore
from automl.candidates import get_family
from automl.errors import interrupted
from automl.family_choice import SECONDS_ATTR, choose_family
from automl.metrics import Metric, is_better
from automl.portfolio import FAMILY_PARAM, Feeder
from automl.sandbox import TICK_S, Child, ChildCrashed, ChildError, ChildStopped, ChildTimeout, ready, spawn
from automl.store.base import Store
from automl.store.records import NewMetric, RunResult
from automl.store.urls import is_sqlite, normalize_url
from automl.training import CANCEL, EPOCH_STEP, ESTIMATE_MARGIN, PRUNE, ROWS_STEP, JobData, cross_validate

WORK_METRIC = "work_seconds"
SLICE_GRACE_S = 2700.0  # a trial started late in a worker's time slice may run this much past it
# One trial may use at most this share of the tuning time left (unless budget.trial_time_s says
# otherwise): a single slow configuration (a forest on 50k rows) must not eat the whole budget.
TRIAL_SHARE = 0.5
MIN_TRIAL_S = 5.0


MAX_TRIALS_AT_ONCE = 4  # trials one process runs at once unless told otherwise


def trials_at_once(n_jobs: int, trial_cap: int | None, cores: int, asked: int | None = None) -> tuple[int, int]:
    """How many trials a job run in one process runs at once, and the threads of each (-1: every core).

    Small data gains more from several single-threaded fits side by side than from one fit on every
    core (two single-threaded trials at once ran 2.3 times as many trials on titanic in 60 s), so a
    spec that leaves threads to the engine (``n_jobs`` -1) runs up to :data:`MAX_TRIALS_AT_ONCE`, one
    per core, and shares the cores among them. A job with a trial cap runs one at a time, so that its
    seed reproduces it (trials that run at once are drawn without each other's scores). ``asked``
    (the ``parallel_trials`` setting) overrides the count; a spec's own ``n_jobs`` stays each trial's."""
    if asked is None:
        if n_jobs != -1 or trial_cap is not None:
            return 1, n_jobs
        asked = min(cores, MAX_TRIALS_AT_ONCE)
    if asked <= 1:
        return 1, n_jobs
    return asked, n_jobs if n_jobs != -1 else max(1, cores // asked)


def study_name(job_id: int) -> str:
    return f"automl-job-{job_id}"


RUNG_PROMOTION = 2  # a row rung passes on the better 1/RUNG_PROMOTION of the trials that reached it
FAMILY_STARTUP = 3  # finished trials of a family before its fold steps prune its other trials


class RungPruner(optuna.pruners.BasePruner):
    """Prunes a trial against trials of its own family. At a fold step (and a net's epoch step), the
    median rule: stop when the trial's score so far is worse than the median of the finished trials
    of the same family at that step, once :data:`FAMILY_STARTUP` of them have finished. A family is
    held against itself, not against the leading family, because the ensemble needs each family's
    best model: on data where a linear model leads by a hair, a forest pruned against it would never
    finish, and its out-of-fold predictions (the ensemble's diversity) would be lost.

    At a row rung (step ``ROWS_STEP + i``, see :func:`automl.training.row_rungs`), asynchronous
    successive halving across families (ASHA, Li et al. 2020, promotion rate 1/:data:`RUNG_PROMOTION`):
    among the n trials that reached the rung, this one included, a trial goes on to more rows only if
    it ranks in the best ``max(1, n // 2)``, counting finished, pruned and running trials alike.
    Comparing with finished trials only would hold each small rung against the few configurations
    that went on, the best ones, and prune almost everything. The rule holds from the first peer on,
    so that on large data a configuration that trails on few rows does not pay for every row; but a
    family's first trial at a rung always goes on, as at the fold steps: its model on all the rows is
    what the ensemble needs from that family (a default CatBoost trailing a default LightGBM on 10k
    rows still earns a large weight beside it on all of them)."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return True
        trials = [t for t in study.get_trials(deepcopy=False) if step in t.intermediate_values]
        if step < ROWS_STEP:
            if step < 1:  # one fold says too little
                return False
            family = trial.params.get(FAMILY_PARAM)
            peers = [
                t.intermediate_values[step]
                for t in trials
                if t.state == optuna.trial.TrialState.COMPLETE and t.params.get(FAMILY_PARAM) == family
            ]
            if len(peers) < FAMILY_STARTUP:
                return False
        else:
            others = [t for t in trials if t.number != trial.number and not math.isnan(t.intermediate_values[step])]
            family = trial.params.get(FAMILY_PARAM)
            if not any(t.params.get(FAMILY_PARAM) == family for t in others):
                return False
            peers = [t.intermediate_values[step] for t in others]
            maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
            ahead = sum(1 for p in peers if (p > value if maximize else p < value))
            return ahead >= max(1, (len(peers) + 1) // RUNG_PROMOTION)
        middle = float(np.nanmedian(peers))
        if study.direction == optuna.study.StudyDirection.MAXIMIZE:
            return bool(value < middle)
        return bool(value > middle)


class _TrialsReadOnce:
    """The study as the sampler sees it while it draws one trial's parameters: every read of the
    trials goes through the study's per-ask cache (:meth:`optuna.Study.ask` clears it, so the first
    read after an ask is fresh, running trials included)."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self, deepcopy: bool = True, states: Any = None, use_cache: bool = False
    ) -> list[optuna.trial.FrozenTrial]:
        return self._study._get_trials(deepcopy, states, use_cache=True)


class ReadOnceTPESampler(optuna.samplers.TPESampler):
    """TPE that reads the study's trials once per drawn trial. With ``constant_liar`` Optuna's TPE
    reads the whole study from the database again for every parameter group it samples, and this
    project's search spaces are conditional on the family: a dozen reads per trial, which took a
    third of the job process's time on small data (about 0.2 s per trial at 90 trials), time in
    which a trial slot waits for its next trial. In one process the trials do not change within a
    draw (outcomes are recorded between draws), so one read gives the same parameters; on the fleet
    a draw sees the shared study as of its first read, a few milliseconds old at most."""

    def sample_relative(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return super().sample_relative(_TrialsReadOnce(study), trial, search_space)  # type: ignore[arg-type]

    def sample_independent(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        return super().sample_independent(_TrialsReadOnce(study), trial, param_name, param_distribution)  # type: ignore[arg-type]


def open_study(database_url: str, job_id: int, seed: int, metric: Metric) -> optuna.Study:
    """Create or load the job's study (RDB storage in the store's own database)."""
    url = normalize_url(database_url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if is_sqlite(url):
        engine_kwargs["connect_args"] = {"timeout": 30}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = ReadOnceTPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    pruner = RungPruner()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=study_name(job_id),
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="maximize" if metric.greater_is_better else "minimize",
        load_if_exists=True,
    )


class Scored(NamedTuple):
    """A succeeded trial, as the reserve for finalizing and the late-trial checks read it."""

    score: float  # its CV score
    fit_s: float  # its folds' summed fit seconds
    family: str
    predict_s_per_row: float | None = None  # what predicting its validation rows took, per row


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
    scored: list[Scored] = field(default_factory=list)
    out_of_time: bool = False  # tuning stopped at the job's wall less the finalizing reserve

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True)
class TuneLimits:
    wall_end: float | None  # monotonic instant the whole job must end by
    trial_cap: int | None
    trial_time_s: float | None
    ensemble_size: int
    refit_extra_s: float = 0.0  # fixed start-up cost of a final refit (importing TensorFlow for a net)


# What finalizing costs besides the refits themselves: ensemble selection over the out-of-fold
# predictions, a child process per refit, loading members, saving the model, the store's writes.
FINALIZE_FIXED_S = 1.5
FINALIZE_FIXED_SHARE = 0.02
# The best trial's refit may keep up to this share of the wall back from tuning. When the lead is a
# slow fit (a boosting model on wide data: 22 s of a 60 s budget), its refit on every training row
# is worth more than the trials the same time would buy: they rarely beat a leader that far ahead.
LEAD_RESERVE_SHARE = 0.5


def reserve_seconds(
    progress: TuneProgress,
    refit_scale: float,
    limits: TuneLimits,
    greater_is_better: bool,
    scored: list[Scored] | None = None,
    speedup: Callable[[str], float] | None = None,
    predict_s: Callable[[str, float, float | None], float] | None = None,
) -> float:
    """Time kept back for finalizing: its fixed cost plus the refit cost (a trial's summed fit
    seconds times ``refit_scale``, over the family's ``speedup`` on the final fits' threads), with
    margin, of the models the ensemble is likely to take: the best few, and the best of each of the
    three leading families (the diverse members), as many of those refits as fit under the cap (a
    third of the wall or so): the best trial's first, then the others cheapest first. ``scored`` is
    every scored trial of the job (all workers'); by default this caller's own. A best trial
    whose refit is not waited for is registered as its trial fitted it, which still predicts the
    holdout rows: ``predict_s(family, fit seconds, measured seconds per row)``
    (:meth:`JobData.predict_estimate`), kept too."""
    if limits.wall_end is None or progress.wall_s is None:
        return 0.0
    scored = progress.scored if scored is None else scored
    fixed = FINALIZE_FIXED_S + FINALIZE_FIXED_SHARE * progress.wall_s
    cap = min(0.35 * progress.wall_s + limits.refit_extra_s, LEAD_RESERVE_SHARE * progress.wall_s)
    if not scored:
        return min(max(fixed, 0.10 * progress.wall_s) + limits.refit_extra_s, cap)
    ranked = sorted(scored, key=lambda entry: entry.score, reverse=greater_is_better)
    likely = ranked[: min(3, limits.ensemble_size)]
    leaders: dict[str, Scored] = {}
    for entry in ranked:
        leaders.setdefault(entry.family, entry)
    for entry in list(leaders.values())[: min(3, limits.ensemble_size)]:
        if entry not in likely:
            likely.append(entry)
    # The best trial's refit first (the final model rests on it), up to half the wall, then the
    # others cheapest first while they fit under the cap. A lead refit longer than half the wall is
    # not waited for (its member keeps its trial's own fit under a holdout split, or is left out):
    # keeping that much back would end tuning early for a refit that may still not fit.
    speedup = speedup or (lambda family: 1.0)
    costs = [ESTIMATE_MARGIN * entry.fit_s * refit_scale / speedup(entry.family) for entry in likely]
    reserve = fixed + limits.refit_extra_s
    if reserve + costs[0] <= LEAD_RESERVE_SHARE * progress.wall_s:
        reserve += costs[0]
        cap = max(cap, reserve)
    else:
        lead = likely[0]
        predicted = predict_s(lead.family, lead.fit_s, lead.predict_s_per_row) if predict_s is not None else 0.0
        reserve = min(reserve + ESTIMATE_MARGIN * predicted, LEAD_RESERVE_SHARE * progress.wall_s)
        cap = max(cap, reserve)
    for cost in sorted(costs[1:]):
        if reserve + cost > cap:
            break
        reserve += cost
    return min(reserve, cap)


SCORED_READ_S = 1.0


def scored_trials(store: Store, job_id: int) -> list[Scored]:
    """Every succeeded trial of the job, whichever worker ran it."""
    return [
        Scored(r.cv_score, r.fit_seconds or 0.0, r.family, r.predict_seconds_per_row)
        for r in store.list_runs(job_id)
        if r.kind == "trial" and r.status == "succeeded" and r.cv_score is not None
    ]


def _save_oof(artifacts: ArtifactStore, job_id: int, number: int, oof: np.ndarray) -> str:
    import io

    key = f"jobs/{job_id}/oof/trial-{number}.npy"
    buffer = io.BytesIO()
    np.save(buffer, oof, allow_pickle=False)
    artifacts.put_bytes(key, buffer.getvalue())
    return key


def trial_deadline(now: float, tune_end: float, trial_time_s: float | None, stop_at: float | None) -> float:
    """When a trial starting at ``now`` is stopped: at the end of tuning (``math.inf`` without a time
    budget), after ``trial_time_s`` when the spec sets it, else after :data:`TRIAL_SHARE` of the
    tuning time left (at least :data:`MIN_TRIAL_S`, never past the end); a worker's slice adds a grace."""
    deadline = tune_end
    if trial_time_s is not None:
        deadline = min(deadline, now + trial_time_s)
    elif deadline != math.inf:
        deadline = min(deadline, now + max(TRIAL_SHARE * (tune_end - now), MIN_TRIAL_S))
    if stop_at is not None:
        deadline = min(deadline, stop_at + SLICE_GRACE_S)
    return deadline if deadline != math.inf else now + 7 * 24 * 3600.0


def _tell_failed(study: optuna.Study, number: int) -> None:
    """Mark a trial failed in Optuna, unless it is already finished (told by its own worker)."""
    with contextlib.suppress(ValueError, RuntimeError):
        study.tell(number, state=optuna.trial.TrialState.FAIL)


def _give_back(held: _Asked, store: Store, study: optuna.Study, job_id: int) -> None:
    """A trial claimed and drawn that will not run: its slot back, failed in the study (no run)."""
    with contextlib.suppress(Exception):
        store.release_trial_slot(job_id)
    with contextlib.suppress(Exception):
        _tell_failed(study, held.trial.number)


# A trial is not started when its family's cheapest trial so far would not end before tuning does
# (it would only be killed at the end); one of a family that can end in time is drawn instead, at
# most this many times in a row.
LATE_REDRAWS = 3


def too_late(family: str, time_left: float, scored: list[Scored]) -> bool:
    """Whether a ``family`` trial would not end in ``time_left`` seconds: the least fit time of
    its succeeded trials so far (a lower bound of a trial's length) is more than that. A family
    with no succeeded trial yet is always started."""
    fits = [entry.fit_s for entry in scored if entry.family == family]
    return bool(fits) and min(fits) > time_left


def in_time_family(families: list[str], time_left: float, scored: list[Scored], greater_is_better: bool) -> str | None:
    """The family to draw instead of one that is :func:`too_late`: the one with the best scored trial
    among those whose cheapest trial so far ends in ``time_left``; None when no scored family does.

    Without it, the sampler draws the late family again (it leads the study, which is why it is
    drawn), and after a few such draws tuning would stop starting trials while cheaper ones of the
    other leading families had seconds to run in (diamonds: a 17 s CatBoost drawn three times with
    17 s left ended tuning 14 s early)."""
    fitting = [
        (entry.score, entry.family)
        for entry in scored
        if entry.family in families and not too_late(entry.family, time_left, scored)
    ]
    if not fitting:
        return None
    return (max if greater_is_better else min)(fitting)[1]


def load_job_study(database_url: str, job_id: int) -> optuna.Study | None:
    """The job's study, for bookkeeping only (no sampler state); None when it was never created."""
    url = normalize_url(database_url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if is_sqlite(url):
        engine_kwargs["connect_args"] = {"timeout": 30}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=study_name(job_id), storage=storage)
    except KeyError:
        return None


def fail_zombie_trials(study: optuna.Study, store: Store, job_id: int, lease_s: float) -> int:
    """Fail the study's trials that nothing will ever finish: RUNNING while their run has ended
    (a worker died between the two writes), or RUNNING with no run at all for longer than the
    lease (drawn ahead by a worker that died before starting it). The slot such a drawn-ahead trial
    claimed is given back, so a trial cap counts the trials that ran. Returns how many were failed."""
    import datetime as dt

    runs = {r.trial_number: r for r in store.list_runs(job_id) if r.kind == "trial"}
    limit = dt.datetime.now() - dt.timedelta(seconds=lease_s)  # Optuna keeps naive local times
    ended_before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=lease_s)
    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        run = runs.get(trial.number)
        if run is not None and run.status == "running":
            continue  # alive, or the lease will fail its run first
        if run is None and (trial.datetime_start is None or trial.datetime_start > limit):
            continue  # just drawn: its worker is about to start it
        if run is not None and (run.finished_at is None or run.finished_at > ended_before):
            continue  # just recorded: its worker is about to tell the study
        _tell_failed(study, trial.number)
        if run is None:
            store.release_trial_slot(job_id)
        failed += 1
    return failed


def recover_stale(study: optuna.Study, store: Store, job_id: int, lease_s: float) -> int:
    """Fail the runs (and their Optuna trials) whose worker stopped heartbeating."""
    stale = store.fail_stale_runs(job_id, lease_s)
    for run in stale:
        if run.trial_number is not None:
            _tell_failed(study, run.trial_number)
    return len(stale)


@dataclass
class _Asked:
    """A configuration drawn from the study, not yet running."""

    trial: optuna.trial.Trial
    family: str
    params: dict[str, Any]


@dataclass
class _Launched:
    """A trial running in its child, with its ``runs`` row."""

    asked: _Asked
    run_id: int
    child: Child
    deadline: float
    started: float = field(default_factory=time.perf_counter)
    scores: list[float] = field(default_factory=list)
    beat_at: float = field(default_factory=time.monotonic)  # when its run was last heartbeated


@dataclass
class _Outcome:
    """How a trial's child ended: its result, or the sandbox's exception."""

    launched: _Launched
    out: dict[str, Any] | None = None
    error: Exception | None = None


def _ask(
    study: optuna.Study,
    data: JobData,
    families: list[str],
    feeder: Feeder,
    family: str | None = None,
    by_time: bool = True,
) -> _Asked:
    """Draw the next trial: the portfolio's next entry, else one of ``family`` (when given) or of
    the family :func:`choose_family` draws (costs in seconds ``by_time``, else in trials), whose
    parameters the sampler draws."""
    if family is None:
        feeder.top_up(study)
    trials = study.get_trials(deepcopy=False)
    if not any(t.state == optuna.trial.TrialState.WAITING for t in trials):
        if family is None:
            maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
            # Seeded by the job and the study's length, so a seeded job with a trial cap draws the same.
            rng = random.Random(data.seed * 1_000_003 + len(trials))
            family = choose_family(trials, families, maximize, rng, by_time)
        if family is not None:
            study.enqueue_trial({FAMILY_PARAM: family})
    trial = study.ask()
    family = str(trial.suggest_categorical(FAMILY_PARAM, families))
    return _Asked(trial, family, get_family(family).suggest(trial, data.task))


def _launch(asked: _Asked, data: JobData, store: Store, job_id: int, worker: str, deadline: float) -> _Launched:
    run = store.start_run(job_id, "trial", asked.family, asked.params, trial_number=asked.trial.number, worker=worker)
    try:
        child = spawn(cross_validate, (data, asked.family, asked.params, deadline))
    except BaseException:
        with contextlib.suppress(Exception):
            store.finish_run(
                run.id, RunResult(status="failed", error_code="INTERNAL_ERROR", error_message="fork failed")
            )
        raise
    return _Launched(asked, run.id, child, deadline)


def _abandon(launched: _Launched, store: Store, study: optuna.Study, exc: BaseException) -> None:
    """The parent failed (or the user pressed Ctrl-C to cancel, :func:`automl.errors.interrupted`)
    while a trial ran: stop the child and leave no run ``running``."""
    launched.child.kill()
    if interrupted(exc):
        result = RunResult(status="cancelled", error_code="CANCELLED", error_message="interrupted by the user (Ctrl-C)")
    else:
        result = RunResult(status="failed", error_code="INTERNAL_ERROR", error_message=repr(exc))
    with contextlib.suppress(Exception):  # the store may be what failed: then the lease recovers the run
        store.finish_run(launched.run_id, result)
    with contextlib.suppress(Exception):
        _tell_failed(study, launched.asked.trial.number)


def _on_fold(launched: _Launched, study: optuna.Study, store: Store, job_id: int) -> Callable[[Any], str]:
    """What the parent answers a trial's child after a fold, a row rung or a net's epoch: prune?"""
    trial = launched.asked.trial

    def on_fold(message: Any) -> str:
        kind, step, value = message
        if kind == "fold":
            launched.scores[:] = value
        if store.job_counters(job_id).cancel_requested:
            return CANCEL
        if kind == "fold":
            trial.report(float(np.mean(value)), step)
        elif kind == "rung":  # the validation score after training on a sample of the rows
            trial.report(float(value), ROWS_STEP + step)
        else:  # a net's validation loss at an epoch: signed so that the study's direction applies
            maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
            trial.report(-value if maximize else value, EPOCH_STEP + step)
        return PRUNE if trial.should_prune() else "go"

    return on_fold


def _collect(
    running: list[_Launched],
    study: optuna.Study,
    store: Store,
    job_id: int,
    should_stop: Callable[[], bool] | None,
) -> list[_Outcome]:
    """Serve the running children's fold reports (prune? cancelled?) and heartbeat their runs until
    at least one ends; the ended ones leave ``running``. A child past its deadline is killed
    (ChildTimeout); all are killed when the job is cancelled or the user asks to stop (ChildStopped)."""
    answer = {launched.child.pid: _on_fold(launched, study, store, job_id) for launched in running}
    outcomes: list[_Outcome] = []

    def end(launched: _Launched, out: Any = None, error: Exception | None = None) -> None:
        launched.child.close()
        running.remove(launched)
        outcomes.append(_Outcome(launched, out=out, error=error))

    try:
        while not outcomes:
            now = time.monotonic()
            for launched in [launched for launched in running if now >= launched.deadline]:
                end(launched, error=launched.child.timed_out())
            if outcomes:
                break
            # Each run is stamped every TICK_S however many shorter trials end beside it meanwhile.
            due = [launched for launched in running if now - launched.beat_at >= TICK_S]
            if due:
                for launched in due:
                    store.heartbeat_run(launched.run_id)
                    launched.beat_at = now
                stop = should_stop is not None and should_stop()
                if stop or store.job_counters(job_id).cancel_requested:
                    for launched in list(running):
                        end(launched, error=launched.child.stopped())
                    break
            wake = min(min(launched.beat_at + TICK_S, launched.deadline) for launched in running)
            by_pid = {launched.child.pid: launched for launched in running}
            for child in ready([launched.child for launched in running], wake - time.monotonic()):
                launched = by_pid[child.pid]
                try:
                    done, out = child.serve(answer[child.pid])
                except (ChildCrashed, ChildError) as exc:
                    end(launched, error=exc)
                    continue
                if done:
                    end(launched, out=out)
    except BaseException as exc:  # the store or the pipe failed, or the user pressed Ctrl-C
        for launched in [*running, *(outcome.launched for outcome in outcomes)]:
            _abandon(launched, store, study, exc)
        running.clear()
        raise
    return outcomes


class Recorded(NamedTuple):
    """A finished trial as :func:`_record` wrote it, for this caller's progress."""

    family: str
    status: str
    score: float | None  # its CV score (succeeded trials)
    fit_s: float
    predict_s_per_row: float | None = None  # measured in the trial (succeeded trials)


def _record(outcome: _Outcome, study: optuna.Study, store: Store, artifacts: ArtifactStore, job_id: int) -> Recorded:
    """Write the trial's run and tell the study."""
    launched = outcome.launched
    trial, family, run_id = launched.asked.trial, launched.asked.family, launched.run_id
    scores = launched.scores
    exc = outcome.error
    # What the trial cost, for choosing the next family (automl.family_choice), on any worker.
    with contextlib.suppress(RuntimeError):  # already failed by another worker's recovery
        trial.set_user_attr(SECONDS_ATTR, round(time.perf_counter() - launched.started, 3))
    if isinstance(exc, ChildTimeout):
        store.finish_run(
            run_id,
            RunResult(
                status="timeout",
                fold_scores=scores or None,
                error_code="TRIAL_TIMEOUT",
                error_message=str(exc),
                fit_seconds=time.perf_counter() - launched.started,
            ),
        )
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return Recorded(family, "timeout", None, 0.0)
    if isinstance(exc, ChildStopped):
        store.finish_run(run_id, RunResult(status="cancelled", fold_scores=scores or None, error_code="CANCELLED"))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return Recorded(family, "cancelled", None, 0.0)
    if exc is not None:
        code = "TRIAL_CRASHED" if isinstance(exc, ChildCrashed) else "TRIAL_FAILED"
        message = f"{exc}\n{exc.trace}" if isinstance(exc, ChildError) else str(exc)
        store.finish_run(
            run_id,
            RunResult(status="failed", fold_scores=scores or None, error_code=code, error_message=message[-4000:]),
        )
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return Recorded(family, "failed", None, 0.0)
    out = outcome.out
    assert out is not None
    # Time in model work (fits, fold predictions, scoring): wall time minus this is orchestration.
    metrics = [NewMetric(name=WORK_METRIC, value=float(out["work_seconds"]), split="cv", run_id=run_id)]
    for epoch in out.get("curves") or []:  # a net's learning curve (its first fold)
        for name, split in (("loss", "train"), ("val_loss", "validation")):
            if name in epoch and math.isfinite(epoch[name]):
                metrics.append(NewMetric(name=name, value=float(epoch[name]), split=split, run_id=run_id,
                                         step=int(epoch["epoch"])))  # fmt: skip
    store.add_metrics(metrics)
    fold_scores = [float(s) for s in out["fold_scores"]]
    partial = float(np.mean(fold_scores)) if fold_scores else None
    if out["stopped"] == CANCEL:
        store.finish_run(run_id, RunResult(status="cancelled", fold_scores=fold_scores, error_code="CANCELLED"))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return Recorded(family, "cancelled", None, out["fit_seconds"])
    if out["stopped"] == PRUNE:
        store.finish_run(
            run_id,
            RunResult(status="pruned", fold_scores=fold_scores, fit_seconds=out["fit_seconds"], cv_score=partial),
        )
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return Recorded(family, "pruned", None, out["fit_seconds"])
    cv = float(np.mean(fold_scores))
    oof_key = _save_oof(artifacts, job_id, trial.number, out["oof"])
    model_key = model_sha = None
    if out.get("model_bytes") is not None:  # holdout scheme: the trial's one fit, kept for the finalizer
        model_key = f"jobs/{job_id}/trials/trial-{trial.number}.joblib"
        model_sha = artifacts.put_bytes(model_key, out["model_bytes"])
    folds_key = folds_sha = None
    if out.get("folds_bytes") is not None:  # K-fold CV: the folds' models, for the final model
        folds_key = f"jobs/{job_id}/trials/trial-{trial.number}.folds.joblib"
        folds_sha = artifacts.put_bytes(folds_key, out["folds_bytes"])
    store.finish_run(
        run_id,
        RunResult(
            status="succeeded",
            cv_score=cv,
            cv_std=float(np.std(fold_scores)),
            fold_scores=fold_scores,
            fit_seconds=out["fit_seconds"],
            oof_uri=oof_key,
            model_uri=model_key,
            model_sha256=model_sha,
            folds_uri=folds_key,
            folds_sha256=folds_sha,
            predict_seconds_per_row=out.get("predict_seconds_per_row"),
        ),
    )
    study.tell(trial, cv)
    return Recorded(family, "succeeded", cv, out["fit_seconds"], out.get("predict_seconds_per_row"))


def _account(progress: TuneProgress, metric: Metric, result: Recorded) -> None:
    family, status, score = result.family, result.status, result.score
    progress.last_family = family
    if status == "succeeded" and score is not None:
        progress.done += 1
        # With its measured prediction, as the job's trials read from the store carry it: the
        # finalizing reserve prices a lead's kept fit by it (fit seconds alone were 20x off).
        progress.scored.append(Scored(score, result.fit_s, family, result.predict_s_per_row))
        if progress.best_score is None or is_better(metric, score, progress.best_score):
            progress.best_score, progress.best_family = score, family
    elif status == "pruned":
        progress.pruned += 1
    elif status != "cancelled":
        progress.failed += 1


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
    should_stop: Callable[[], bool] | None = None,
    parallel: int = 1,
) -> TuneProgress:
    """Run trials until the job's trial cap (a counter shared by every worker) or its time wall
    (less the refit reserve) is reached, or the job is cancelled. ``stop_at`` ends this caller's
    share early (a worker's time slice) without ending the job; so does ``should_stop`` turning
    true (the user asked to finish with the trials done), which also stops the trials running.
    ``parallel`` trials run at once, each in its own child (``data.n_jobs`` threads each).

    The parent's bookkeeping overlaps the children's work: as soon as a trial's child returns,
    the next trial's child is started, and only then is the finished trial written to the store and
    told to the study, and the slot and configuration of the next trial claimed and drawn ahead.
    The store and study calls (tens of milliseconds per trial) thus run while a model fits instead
    of between fits. A trial drawn ahead that never runs (time up, slice over, cancelled) gives its
    slot back and is marked failed in the study; no run is recorded for it. Once no trial may start,
    the running ones are waited for: each ends by its deadline, which is never past the tuning time.
    """
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    metric = data.metric
    feeder = Feeder(data.task, families)
    held: _Asked | None = None  # a slot claimed and a trial drawn ahead, while the others ran
    running: list[_Launched] = []
    ended: list[_Outcome] = []  # not yet recorded
    last_trial_s = 0.0
    # Every worker of the job reserves time for the same finalizing step, so each reads the job's
    # scored trials from the store (at most once a second) rather than counting its own only: a
    # worker that ran the cheap trials would otherwise tune on into the time the other's need.
    job_scored: list[Scored] = []
    read_at, own_at_read = -math.inf, 0
    scored: list[Scored] = []  # the job's scored trials, as last read, and this caller's since
    starting = True  # whether new trials may start
    by_time = limits.wall_end is not None  # families' costs in seconds; in trials without a time budget

    def record(outcome: _Outcome) -> str:
        result = _record(outcome, study, store, artifacts, job_id)
        _account(progress, metric, result)
        if on_progress is not None:
            on_progress(progress)
        return result.status

    try:
        while True:
            now = time.monotonic()
            tune_end = math.inf
            if limits.wall_end is not None:
                if now - read_at >= SCORED_READ_S:
                    job_scored, read_at, own_at_read = scored_trials(store, job_id), now, len(progress.scored)
                scored = job_scored + progress.scored[own_at_read:]  # and this caller's since the read
                tune_end = limits.wall_end - reserve_seconds(
                    progress, data.refit_scale, limits, metric.greater_is_better, scored, data.refit_speedup,
                    data.predict_estimate,
                )  # fmt: skip
                if starting and now >= tune_end - 0.25:
                    progress.out_of_time = True
                    starting = False
            if stop_at is not None and now >= stop_at:
                starting = False
            stopping = should_stop is not None and should_stop()
            if starting and (stopping or store.job_counters(job_id).cancel_requested):
                starting = False
            redraws, instead = 0, None
            while starting and len(running) < parallel:
                if held is None:
                    if not store.claim_trial_slot(job_id, limits.trial_cap):
                        starting = False
                        break
                    held = _ask(study, data, families, feeder, instead, by_time)
                time_left = tune_end - time.monotonic()
                if limits.wall_end is not None and too_late(held.family, time_left, scored):
                    _give_back(held, store, study, job_id)
                    held = None
                    redraws += 1
                    instead = in_time_family(families, time_left, scored, metric.greater_is_better)
                    if instead is None or redraws >= LATE_REDRAWS:
                        progress.out_of_time = True
                        starting = False
                    continue
                instead = None
                deadline = trial_deadline(now, tune_end, limits.trial_time_s, stop_at)
                running.append(_launch(held, data, store, job_id, worker, deadline))
                held = None
            try:
                while ended:
                    if record(ended.pop(0)) == "cancelled":
                        raise _Cancelled
                horizon = min(tune_end, stop_at if stop_at is not None else math.inf)
                if (
                    starting
                    and held is None
                    and not (should_stop is not None and should_stop())
                    and time.monotonic() + last_trial_s < horizon
                    and store.claim_trial_slot(job_id, limits.trial_cap)
                ):
                    held = _ask(study, data, families, feeder, by_time=by_time)
            except _Cancelled:
                for launched in running:
                    launched.child.kill()
                    store.finish_run(launched.run_id, RunResult(status="cancelled", error_code="CANCELLED"))
                    _tell_failed(study, launched.asked.trial.number)
                running.clear()
                break
            if not running:
                break
            ended = _collect(running, study, store, job_id, should_stop)
            last_trial_s = max(time.perf_counter() - outcome.launched.started for outcome in ended)
    except BaseException as exc:  # the store failed, or the user pressed Ctrl-C: no child is left behind
        for launched in running:
            _abandon(launched, store, study, exc)
        running.clear()
        raise
    finally:
        if held is not None:  # claimed and drawn, never run: give the slot back
            _give_back(held, store, study, job_id)
        for outcome in ended:
            record(outcome)
    return progress


class _Cancelled(Exception):
    """The trial just recorded was cancelled: stop the one running too."""
