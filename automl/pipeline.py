"""The spine of a job: one function per step, each taking ids and reading/writing the store.

``automl run`` calls :func:`run_job`, which calls the steps in order in one process; a worker can
call any step on its own, because each one rebuilds what it needs from the store:

    submit_job → start_job → tune_job → finalize_job
"""

from __future__ import annotations

import getpass
import io
import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from automl.artifacts import ArtifactStore
from automl.errors import AutomlError, BudgetExhausted, NoSuccessfulTrial
from automl.spec import JobSpec, LoadedSpec
from automl.store.base import Store
from automl.store.records import (
    JobRecord,
    ModelVersionRecord,
    NewJob,
    NewMetric,
    NewModelVersion,
    RunRecord,
    RunResult,
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
    )
    categorical = sum(1 for _, kind in plan.features if kind == "categorical")
    ctx = SelectionContext(task=job.task, rows=len(data.y), features=len(plan.features), categorical=categorical)
    choices = select_candidates(ctx, spec.include(), spec.exclude())
    families = [c.family for c in choices if c.selected]
    if job.selection is None:
        from dataclasses import asdict

        job = store.update_job(
            job_id,
            selection=[asdict(c) for c in choices],
            profile={**profile.to_dict(), "dropped": plan.dropped},
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
    from datetime import UTC, datetime, timedelta

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
    from automl.tuning import TuneLimits, TuneProgress, enqueue_defaults, open_study, recover_stale, tune

    spec = ctx.spec
    job = store.get_job(ctx.job.id)
    study = open_study(database_url, job.id, spec.seed, ctx.data.metric)
    enqueue_defaults(study, ctx.families, job.task)
    recover_stale(study, store, job.id, lease_s)
    from automl.training import TF_IMPORT_S

    extra = TF_IMPORT_S if "mlp" in ctx.families else 0.0
    limits = TuneLimits(wall_end_of(job), spec.budget.trials, spec.budget.trial_time_s, spec.ensemble.max_size, extra)
    progress = TuneProgress(time.monotonic(), spec.budget.time_s)
    return tune(study, ctx.data, ctx.families, store, artifacts, job.id, limits, progress, on_progress, worker, stop_at)


# -- step 4: finalize -----------------------------------------------------------------------------


def _load_oof(artifacts: ArtifactStore, key: str) -> np.ndarray:
    return np.asarray(np.load(io.BytesIO(artifacts.get_bytes(key)), allow_pickle=False))


def _ranked(runs: list[RunRecord], greater_is_better: bool) -> list[RunRecord]:
    ok = [r for r in runs if r.kind == "trial" and r.status == "succeeded" and r.cv_score is not None and r.oof_uri]
    return sorted(ok, key=lambda r: (-(r.cv_score or 0.0) if greater_is_better else (r.cv_score or 0.0), r.id))


def finalize_job(store: Store, artifacts: ArtifactStore, ctx: JobContext, wall_end: float | None) -> JobRecord:
    """Ensemble selection, refit, holdout metrics, artifact and model version; ends the job."""
    from automl.ensemble import blend, fold_scores, greedy_select
    from automl.metrics import holdout_report, is_better
    from automl.model import assemble
    from automl.sandbox import ChildCrashed, ChildError, ChildTimeout, run_in_child
    from automl.training import TF_IMPORT_S, refit

    data, spec, job = ctx.data, ctx.spec, store.get_job(ctx.job.id)
    metric = data.metric
    existing = store.version_for_job(job.id)
    if existing is not None:  # a finalizer that died after registering: the version stands
        if "promotion" not in (job.summary or {}):
            apply_promotion(store, artifacts, ctx, existing)
        return store.get_job(job.id)
    ranked = _ranked(store.list_runs(job.id), metric.greater_is_better)
    if not ranked:
        raise NoSuccessfulTrial(
            "no trial finished successfully, so there is no model to register",
            hint="see the errors with `automl leaderboard JOB_ID`; raise the budget or change candidates",
        )
    pool = ranked[: max(2 * spec.ensemble.max_size, 10)]
    best = pool[0]
    members, weights = [best], [1.0]
    ensemble_run: RunRecord | None = None
    if spec.ensemble.enabled and len(pool) > 1:
        oofs = [_load_oof(artifacts, r.oof_uri or "") for r in pool]
        choice = greedy_select(oofs, data.y, metric, spec.ensemble.max_size)
        chosen = [pool[i] for i in choice.members]
        scores = fold_scores(blend([oofs[i] for i in choice.members], choice.weights), data.y, data.folds, metric)
        cv = float(np.mean(scores))
        described = [
            {"run_id": r.id, "trial": r.trial_number, "family": r.family, "weight": w}
            for r, w in zip(chosen, choice.weights, strict=True)
        ]
        ensemble_run = store.start_run(job.id, "ensemble", "ensemble", {"max_size": spec.ensemble.max_size})
        store.finish_run(
            ensemble_run.id,
            RunResult(
                status="succeeded",
                cv_score=cv,
                cv_std=float(np.std(scores)),
                fold_scores=scores,
                members=described,
                fit_seconds=0.0,
            ),
        )
        if len(chosen) > 1 and best.cv_score is not None and is_better(metric, cv, best.cv_score):
            members, weights = chosen, choice.weights
            members_sorted = sorted(zip(members, weights, strict=True), key=lambda mw: mw[0].id != best.id)
            members, weights = [m for m, _ in members_sorted], [w for _, w in members_sorted]

    folds = len(data.folds)

    def refit_estimate(run: RunRecord) -> float:
        # CV fit K models on (K-1)/K of the rows each; one refit on all rows costs about 1/(K-1) of that.
        # A net's refit process also imports TensorFlow first.
        start_up = TF_IMPORT_S if run.family == "mlp" else 0.0
        return 1.25 * (run.fit_seconds or 0.0) / max(folds - 1, 1) + start_up

    if wall_end is not None:
        remaining = wall_end - time.monotonic() - 0.5
        if refit_estimate(best) > remaining:
            # The best model cannot be refit in the time left: take the best one that can (or the
            # cheapest), alone. A model on time beats a better one past the wall.
            fits = [r for r in ranked if refit_estimate(r) <= remaining]
            best = fits[0] if fits else min(ranked, key=refit_estimate)
            members, weights = [best], [1.0]

    fitted: list[tuple[RunRecord, float, dict[str, Any]]] = []
    for run, weight in zip(members, weights, strict=True):
        if wall_end is not None and run.id != best.id and refit_estimate(run) > wall_end - time.monotonic() - 0.5:
            continue  # no time left for this member: the ensemble is dropped below
        deadline = (wall_end - 0.5) if wall_end is not None else time.monotonic() + 7 * 24 * 3600.0
        key = f"jobs/{job.id}/members/trial-{run.trial_number}.joblib"
        try:
            out = run_in_child(refit, (data, run.family, run.params, str(artifacts.root), key, deadline), deadline)
        except (ChildTimeout, ChildCrashed, ChildError) as exc:
            if run.id == best.id:
                raise BudgetExhausted(
                    f"refitting the best model ({run.family}, trial {run.trial_number}) failed: {exc}",
                    hint="raise budget.time_s so the final refit fits in it",
                ) from exc
            continue
        store.set_run_holdout(run.id, metric.score(data.y_holdout, out["holdout"]))
        fitted.append((run, weight, out))

    use_ensemble = len(fitted) > 1 and len(fitted) == len(members)
    if not use_ensemble:
        fitted = fitted[:1]
    final_weights = [w for _, w, _ in fitted]
    final_pred = blend([o["holdout"] for _, _, o in fitted], final_weights) if use_ensemble else fitted[0][2]["holdout"]
    holdout_score = float(metric.score(data.y_holdout, final_pred))
    if ensemble_run is not None and use_ensemble:
        store.set_run_holdout(ensemble_run.id, holdout_score)
    model_key = f"models/{job.model_name}/job-{job.id}/model.joblib"
    if job.task == "regression" and len(fitted) == 1:
        # The refit member is the final model as it stands: copy its bytes, don't load and re-save them
        # (a large forest costs seconds each way, past the wall).
        member = fitted[0][2]
        sha = artifacts.put_bytes(model_key, artifacts.get_bytes(member["key"], member["sha256"]))
    else:
        estimators = [artifacts.get_object(o["key"], o["sha256"]) for _, _, o in fitted]
        final_model = assemble(job.task, estimators, final_weights, data.classes)
        sha = artifacts.put_object(model_key, final_model)
    winner = store.get_run(ensemble_run.id) if (use_ensemble and ensemble_run is not None) else fitted[0][0]
    report = holdout_report(job.task, data.y_holdout, final_pred)
    version = store.create_model_version(
        NewModelVersion(
            model_name=job.model_name,
            job_id=job.id,
            run_id=winner.id,
            task=job.task,
            metric=job.metric,
            cv_score=winner.cv_score,
            holdout_score=holdout_score,
            artifact_uri=model_key,
            artifact_sha256=sha,
            input_schema=[
                {"name": name, "kind": kind, "dtype": data.profile.column(name).dtype}
                for name, kind in data.plan.features
            ],
        )
    )
    scalar = {k: float(v) for k, v in report.items() if isinstance(v, int | float)}
    store.add_metrics(
        [NewMetric(name=k, value=v, split="holdout", model_version_id=version.id) for k, v in scalar.items()]
    )
    runs = store.list_runs(job.id)
    trials = [r for r in runs if r.kind == "trial"]
    summary = {
        "final": "ensemble" if use_ensemble else "single",
        "best": {
            "run_id": best.id,
            "trial": best.trial_number,
            "family": best.family,
            "params": best.params,
            "cv_score": best.cv_score,
            "cv_std": best.cv_std,
        },
        "ensemble": None
        if ensemble_run is None
        else {
            "run_id": ensemble_run.id,
            "cv_score": store.get_run(ensemble_run.id).cv_score,
            "members": [
                {"run_id": r.id, "trial": r.trial_number, "family": r.family, "weight": w} for r, w, _ in fitted
            ]
            if use_ensemble
            else store.get_run(ensemble_run.id).members,
            "used": use_ensemble,
        },
        "holdout": report,
        "holdout_score": holdout_score,
        "metric": job.metric,
        "version": {
            "id": version.id,
            "model_name": version.model_name,
            "version": version.version,
            "artifact_uri": model_key,
            "sha256": sha,
        },
        "trials": {s: sum(1 for r in trials if r.status == s) for s in ("succeeded", "failed", "pruned", "timeout")},
        "classes": data.classes,
    }
    store.update_job(job.id, summary={**(store.get_job(job.id).summary or {}), **summary})
    apply_promotion(store, artifacts, ctx, version)
    return store.get_job(job.id)


def apply_promotion(
    store: Store, artifacts: ArtifactStore, ctx: JobContext, version: ModelVersionRecord
) -> dict[str, Any]:
    """The spec's ``register.promote`` policy for the new version: ``never``; ``always``; or
    ``if_better``: champion/challenger, where the version ``production`` points at is scored on
    this job's holdout (in a child process) and the new one is promoted only if its score there is
    better. The decision and both scores go in the job summary (``promotion``) and, when the alias
    moves, in the ``alias_events`` row."""
    from automl.metrics import is_better
    from automl.registry import PRODUCTION, promote
    from automl.sandbox import ChildCrashed, ChildError, ChildTimeout, run_in_child
    from automl.training import score_saved_model

    job, policy, metric = store.get_job(ctx.job.id), ctx.spec.register_.promote, ctx.data.metric
    record: dict[str, Any] = {
        "policy": policy,
        "alias": PRODUCTION,
        "metric": job.metric,
        "challenger": {"version_id": version.id, "version": version.version, "holdout_score": version.holdout_score},
        "champion": None,
        "promoted": False,
    }
    current = store.get_alias(version.model_name, PRODUCTION)
    if policy == "never":
        record["decision"] = "not promoted: register.promote is never"
    elif current is not None and current.version_id == version.id:
        record["decision"] = "already in production"
    elif policy == "always" or current is None:
        record["promoted"] = True
        record["decision"] = (
            "promoted: register.promote is always"
            if policy == "always"
            else ("promoted: nothing was in production yet")
        )
    else:
        champion = store.get_model_version(current.version_id)
        record["champion"] = {"version_id": champion.id, "version": champion.version, "holdout_score": None}
        try:
            score = run_in_child(
                score_saved_model,
                (str(artifacts.root), champion.artifact_uri, champion.artifact_sha256, ctx.data),
                time.monotonic() + 900.0,
            )
        except (ChildTimeout, ChildCrashed, ChildError) as exc:
            record["decision"] = f"kept v{champion.version}: it could not be scored on this job's holdout ({exc})"
        else:
            record["champion"]["holdout_score"] = score
            challenger = version.holdout_score
            if challenger is not None and is_better(metric, challenger, score):
                record["promoted"] = True
                record["decision"] = (
                    f"promoted: {job.metric} {challenger:.6g} beats v{champion.version}'s {score:.6g} on this holdout"
                )
            else:
                record["decision"] = (
                    f"kept v{champion.version}: its {job.metric} {score:.6g} on this holdout is not beaten "
                    f"by {challenger if challenger is None else format(challenger, '.6g')}"
                )
    if record["promoted"]:
        details = {k: record[k] for k in ("policy", "metric", "challenger", "champion")} | {"job_id": job.id}
        event = promote(
            store, artifacts, version.model_name, version.id, by=job.submitted_by,
            reason=f"job {job.id}: register.promote={policy}", details=details,
        )  # fmt: skip
        record["event_id"] = event.id if event is not None else None
    store.update_job(job.id, summary={**(store.get_job(job.id).summary or {}), "promotion": record})
    return record


# -- the local runner -----------------------------------------------------------------------------


def run_job(
    store: Store,
    artifacts: ArtifactStore,
    job_id: int,
    database_url: str,
    on_progress: Callable[[Any], None] | None = None,
) -> JobRecord:
    """Run every step of a queued job in this process. Failures end the job ``failed`` with a code."""
    started = time.monotonic()
    try:
        ctx = start_job(store, artifacts, job_id)
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
