"""The last step of a job: choose the final members, refit them, calibrate, register the version
and write one summary of what happened and why.

    choose_members → refit_members → calibrate → register → summarise → promotion

The finalizer always ends with a registered model when at least one trial succeeded: if the best
trial cannot be refit before the wall, it refits the best one that can (or the cheapest), with a
small grace past the wall, and the summary says why the final model is not the best trial.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from automl import ensemble
from automl.artifacts import ArtifactStore
from automl.calibration import evidence_floor, fit_temperature, scale
from automl.errors import BudgetExhausted, NoSuccessfulTrial
from automl.metrics import holdout_report, is_better
from automl.model import assemble
from automl.sandbox import ChildCrashed, ChildError, ChildTimeout, openmp_single_threaded, run_in_child
from automl.store.base import Store
from automl.store.records import JobRecord, ModelVersionRecord, NewMetric, NewModelVersion, RunRecord, RunResult
from automl.training import (
    ESTIMATE_MARGIN,
    TF_IMPORT_S,
    JobData,
    fit_all_rows,
    predict_trial_model,
    refit,
    save_s_per_mb,
)

# Past the wall, a fallback refit (the cheapest model, when the best could not be refit in time)
# may use this share of the budget, at most MAX_GRACE_S: a model a moment late beats no model.
GRACE_SHARE = 0.03
MAX_GRACE_S = 10.0
SAFETY_S = 0.5  # kept free before the wall for writing the version and summary
FINALIZE_SAVE_S = 0.5  # calibrating, saving the model and writing the version, besides the refits
SAVE_MARGIN = 1.5  # the final model's save, over the measured save of the evaluation model
# Loading a fitted member and writing it into the saved model: WRITER_SAVE_FACTOR times what saving
# it took its refit (a load, a save, and margin), and at least its size's estimate (automl.training).
WRITER_SAVE_FACTOR = 3.0
# An all-rows refit is tried when half its estimate fits in the time left: the estimate runs high
# (boosting on more rows stops early on its own split; binned trees grow slower than the rows), and
# one that does not finish is killed at the wall while its member keeps the fit it has.
ALL_ROWS_MARGIN = 0.5
# A final fit whose trees grow by time (boosting rounds, a forest's trees) stops after this many
# times its estimate: a forest whose trial grew few trees in its share of the time must not spend
# the time the other members' fits need growing all of its configured trees.
FIT_CAP_FACTOR = 2.0


@dataclass
class Selection:
    """The runs the final model is made of, and why."""

    best: RunRecord  # the best single trial, as ranked
    members: list[RunRecord]
    weights: list[float]
    ensemble_run: RunRecord | None = None
    reason: str = ""


@dataclass
class Refitted:
    """Members refit on every training row, each with its holdout prediction."""

    fitted: list[tuple[RunRecord, float, dict[str, Any]]] = field(default_factory=list)
    reason: str = ""


def _load_oof(artifacts: ArtifactStore, key: str) -> np.ndarray:
    return np.asarray(np.load(io.BytesIO(artifacts.get_bytes(key)), allow_pickle=False))


def _blend_fold_scores(oofs: list[np.ndarray], weights: list[float], data: JobData) -> list[float]:
    """Per-fold scores of the weighted blend of out-of-fold predictions (over the validated rows),
    comparable with a trial's CV score."""
    full = np.zeros((len(data.y), *oofs[0].shape[1:]))
    full[data.validated] = ensemble.blend(oofs, weights)
    return ensemble.fold_scores(full, data.y, data.folds, data.metric)


def ranked_runs(runs: list[RunRecord], greater_is_better: bool) -> list[RunRecord]:
    """Succeeded trials with out-of-fold predictions, best CV score first."""
    ok = [r for r in runs if r.kind == "trial" and r.status == "succeeded" and r.cv_score is not None and r.oof_uri]
    return sorted(ok, key=lambda r: (-(r.cv_score or 0.0) if greater_is_better else (r.cv_score or 0.0), r.id))


def refit_estimate(run: RunRecord, data: JobData) -> float:
    """Seconds a refit of ``run`` on every training row is expected to take, on the final fits'
    threads (a net's refit process also imports TensorFlow first)."""
    start_up = TF_IMPORT_S if run.family == "mlp" else 0.0
    return 1.25 * (run.fit_seconds or 0.0) * data.refit_scale / data.refit_speedup(run.family) + start_up


def kept_predict_estimate(run: RunRecord, data: JobData) -> float:
    """Seconds the fit ``run``'s trial kept (holdout scheme) is expected to take to load and predict
    the holdout rows (:meth:`JobData.predict_estimate`: measured in its trial where it was), with
    margin."""
    return ESTIMATE_MARGIN * data.predict_estimate(run.family, run.fit_seconds or 0.0, run.predict_seconds_per_row)


def member_estimate(run: RunRecord, data: JobData) -> float:
    """Seconds to have ``run`` as a final member: its refit on every training row, or, where its
    trial kept its fit, the lesser of that and the kept fit's holdout prediction."""
    refit_s = refit_estimate(run, data)
    return min(refit_s, kept_predict_estimate(run, data)) if run.model_uri else refit_s


def kept_fit_in_time(kept: list[RunRecord], data: JobData, left_s: float) -> RunRecord:
    """Of the trials that kept their fit (``kept``, best first), the best whose holdout prediction
    is expected to end within ``left_s`` (:func:`kept_predict_estimate`), else the quickest to
    predict: on diamonds_x10 the leading LightGBM fit took 7.6 s to predict the 109,050 holdout
    rows, a linear fit a tenth of a second."""
    in_time = [r for r in kept if kept_predict_estimate(r, data) <= left_s]
    return in_time[0] if in_time else min(kept, key=lambda r: kept_predict_estimate(r, data))


def _save_room(artifacts: ArtifactStore, family: str, fit: dict[str, Any]) -> float:
    """Seconds the final model's writer may take to load and save the member ``fit``."""
    size_mb = artifacts.path(fit["key"]).stat().st_size / 1e6 if artifacts.exists(fit["key"]) else 0.0
    return max(WRITER_SAVE_FACTOR * float(fit.get("save_s", 0.0)), save_s_per_mb(family) * size_mb)


def fold_models(run: RunRecord) -> tuple[str, str] | None:
    """The artifact (key, sha256) of the models ``run``'s folds fitted, where its trial kept them."""
    return (run.folds_uri, run.folds_sha256) if run.folds_uri and run.folds_sha256 else None


def ensemble_pool(ranked: list[RunRecord], top: int) -> list[RunRecord]:
    """The trials greedy selection may draw from, best first: the ``top`` best, and the best of every
    family that is not among them. On small data one family often fills the top ranks with
    near-copies of one model (sixteen linear models within 0.0005 ROC AUC); the best tree, boosting
    and neighbours models make the ensemble diverse (Caruana et al., 2004, select from a library of
    many kinds of model)."""
    pool = list(ranked[:top])
    families = {r.family for r in pool}
    for run in ranked[top:]:
        if run.family not in families:
            pool.append(run)
            families.add(run.family)
    return pool


def choose_members(
    store: Store,
    artifacts: ArtifactStore,
    job_id: int,
    data: JobData,
    spec: Any,
    ranked: list[RunRecord],
    time_left: float | None = None,
) -> Selection:
    """Greedy ensemble selection over the out-of-fold predictions of the best trials, with members
    whose final fits (refit, or the trial's own fit where it was kept: :func:`member_estimate`) fit
    together in ``time_left``; the ensemble is kept when its CV score beats the best single trial's."""
    metric = data.metric
    pool = ensemble_pool(ranked, max(2 * spec.ensemble.max_size, 10))
    best = pool[0]
    selection = Selection(best, [best], [1.0])
    if not spec.ensemble.enabled:
        selection.reason = "the best trial: ensembles are disabled by the spec"
        return selection
    if len(pool) < 2:
        selection.reason = "the best trial: it is the only successful one"
        return selection
    rows = data.validated
    oofs = [_load_oof(artifacts, r.oof_uri or "")[rows] for r in pool]
    costs = [member_estimate(r, data) for r in pool]
    choice = ensemble.greedy_select(
        oofs, data.y[rows], metric, spec.ensemble.max_size, costs=costs, budget=time_left
    )  # fmt: skip
    chosen = [pool[i] for i in choice.members]
    scores = _blend_fold_scores([oofs[i] for i in choice.members], choice.weights, data)
    cv = float(np.mean(scores))
    described = [
        {"run_id": r.id, "trial": r.trial_number, "family": r.family, "weight": w}
        for r, w in zip(chosen, choice.weights, strict=True)
    ]
    run = store.start_run(job_id, "ensemble", "ensemble", {"max_size": spec.ensemble.max_size})
    store.finish_run(
        run.id,
        RunResult(
            status="succeeded", cv_score=cv, cv_std=float(np.std(scores)), fold_scores=scores, members=described,
            fit_seconds=0.0,
        ),
    )  # fmt: skip
    selection.ensemble_run = store.get_run(run.id)
    if len(chosen) > 1 and best.cv_score is not None and is_better(metric, cv, best.cv_score):
        ordered = sorted(zip(chosen, choice.weights, strict=True), key=lambda mw: mw[0].id != best.id)
        selection.members, selection.weights = [m for m, _ in ordered], [w for _, w in ordered]
        selection.reason = f"the ensemble: CV {cv:.6g} beats the best single trial's {best.cv_score:.6g}"
    else:
        selection.reason = f"the best trial: the ensemble's CV {cv:.6g} does not beat it"
    return selection


def refit_members(
    artifacts: ArtifactStore,
    job: JobRecord,
    data: JobData,
    selection: Selection,
    ranked: list[RunRecord],
    wall_end: float | None,
) -> Refitted:
    """Refit the chosen members on every training row, in the time left. A member whose refit
    would not fit but whose trial kept its model (holdout scheme) is registered as its trial fit
    it; when the lead member can be neither, fall back to the best model that can be made in time."""
    grace = min(MAX_GRACE_S, max(1.0, GRACE_SHARE * (job.time_budget_s or 0.0)))
    out = Refitted()
    members, weights = selection.members, selection.weights

    def remaining() -> float:  # less the time saving the members fitted so far will take
        return wall_end - time.monotonic() - SAFETY_S - save_room() if wall_end is not None else float("inf")

    def save_room() -> float:
        return sum(_save_room(artifacts, run.family, fit) for run, _, fit in out.fitted)

    def ready(run: RunRecord) -> bool:  # can be had in the time left
        return member_estimate(run, data) <= remaining()

    def deadline_for(extra: float = 0.0) -> float:
        if wall_end is None:
            return time.monotonic() + 7 * 24 * 3600.0
        return wall_end - SAFETY_S - save_room() + extra

    def make(run: RunRecord, extra: float = 0.0, reuse: bool | None = None, bag: bool = True) -> dict[str, Any] | None:
        """Refit ``run``, or take its trial's fit (``reuse``; by default when a refit would not fit);
        a refit averages the trial's fold models in when ``bag`` and time allow.

        The refit on every training row is preferred even where the trial kept its fit (holdout
        scheme): that fit learned from the trial's split only, and the holdout score is the one a
        fit that never saw the holdout earns, so the more rows it learned from the better."""
        deadline = deadline_for(extra)
        if reuse is None:
            reuse = run.model_uri is not None and refit_estimate(run, data) > remaining()
        if reuse:
            target: Any = predict_trial_model
            args: tuple[Any, ...] = (data, str(artifacts.root), run.model_uri, run.model_sha256)
        else:
            target = refit
            key = f"jobs/{job.id}/members/trial-{run.trial_number}.joblib"
            cap = max(1.0, FIT_CAP_FACTOR * refit_estimate(run, data))
            folds = fold_models(run) if bag else None
            args = (data, run.family, run.params, str(artifacts.root), key, deadline, cap, folds)
        try:
            result: dict[str, Any] = run_in_child(target, args, deadline)
        except (ChildTimeout, ChildCrashed, ChildError):
            return None
        return result

    def fallback(failed: RunRecord) -> tuple[RunRecord, dict[str, Any]] | None:
        """After the lead's refit failed: the best trial's own fit that can predict the holdout in
        the time left (:func:`kept_fit_in_time`), or the cheapest refit, with grace."""
        kept = [r for r in ranked if r.model_uri]
        if kept:
            chosen = kept_fit_in_time(kept, data, remaining() + grace)
            result = make(chosen, grace, reuse=True)
            if result is not None:
                return chosen, result
        # The cheapest refit, given the grace (the failed lead too: it may have only lacked time),
        # without fold models: nothing but its own fit stands between it and the wall.
        cheapest = min(ranked[:20], key=lambda r: refit_estimate(r, data))
        result = make(cheapest, grace, reuse=False, bag=False)
        return (cheapest, result) if result is not None else None

    first: dict[str, Any] | None = None  # the lead's fit, where it was had before the loop below

    def try_kept_first(run: RunRecord, room: float) -> dict[str, Any] | None:
        """``run``'s kept fit, predicting by a deadline that leaves ``room`` before the wall; None
        when it has no kept fit, its measured prediction does not fit, or it did not end in time."""
        if not run.model_uri or run.predict_seconds_per_row is None:
            return None
        expected = data.predict_estimate(run.family, run.fit_seconds or 0.0, run.predict_seconds_per_row)
        if expected + room > remaining():
            return None
        return make(run, -room, reuse=True)

    if not ready(members[0]):
        # The chosen model cannot be had in the time left, by its estimate with margin: the best
        # one that can (or the cheapest). A lead whose trial kept its fit is still tried first when
        # its measured prediction, without the margin, fits beside that one's with it: stopped at
        # that one's start, it costs nothing the model needs.
        fits = [r for r in ranked if ready(r)]
        lead = fits[0] if fits else min(ranked, key=lambda r: member_estimate(r, data))
        first = try_kept_first(members[0], member_estimate(lead, data))
        if first is None:
            out.reason = (
                f"{lead.family} (trial {lead.trial_number}) alone: {selection.reason.split(':')[0]} "
                f"could not be refit in the {max(remaining(), 0):.1f} s left"
            )
            members, weights = [lead], [1.0]
    # After the lead, the cheapest refits first: a costly member that runs out of time is then the
    # last one tried, and the cheap ones (a linear model, neighbours) are not left without time.
    rest = sorted(zip(members[1:], weights[1:], strict=True), key=lambda mw: refit_estimate(mw[0], data))
    members, weights = [members[0], *(m for m, _ in rest)], [weights[0], *(w for _, w in rest)]
    for index, (run, weight) in enumerate(zip(members, weights, strict=True)):
        if index and not ready(run):
            continue  # no time left for this member; a cheaper one after it may still fit
        result = first if index == 0 and first is not None else make(run)
        if result is None and index == 0:
            rescued = fallback(run)
            if rescued is None:
                raise BudgetExhausted(
                    f"refitting the final model ({run.family}, trial {run.trial_number}) failed in the time left",
                    hint="raise budget.time_s so the final refit fits in it",
                )
            out.reason = (
                f"{rescued[0].family} (trial {rescued[0].trial_number}) alone: the refit of "
                f"{run.family} (trial {run.trial_number}) did not finish in the time left"
                if rescued[0].id != run.id
                else f"{run.family} (trial {run.trial_number}) alone: refit in a grace past the wall, none was left"
            )
            out.fitted.append((rescued[0], 1.0, rescued[1]))
            return out
        if result is None:
            continue
        out.fitted.append((run, weight, result))
    if len(out.fitted) < len(members):
        out.fitted, out.reason = _best_part(artifacts, data, out.fitted, len(members), selection.reason, out.reason)
    return out


def _best_part(
    artifacts: ArtifactStore,
    data: JobData,
    fitted: list[tuple[RunRecord, float, dict[str, Any]]],
    chosen: int,
    chosen_reason: str,
    reason: str,
) -> tuple[list[tuple[RunRecord, float, dict[str, Any]]], str]:
    """When only some of the ``chosen`` members could be refit: those members, their weights
    rescaled, if their blend's CV score beats the lead's alone; else the lead alone."""
    lead = fitted[0][0]
    alone = reason or (
        f"{lead.family} (trial {lead.trial_number}) alone: {chosen_reason.split(':')[0]} could not be refit in the "
        "time left"
    )
    lone = [(lead, 1.0, fitted[0][2])]  # the lead alone: all the weight, as the card shows it
    if len(fitted) < 2 or lead.cv_score is None:
        return lone, alone
    rows, total = data.validated, sum(w for _, w, _ in fitted)
    oofs = [_load_oof(artifacts, run.oof_uri or "")[rows] for run, _, _ in fitted]
    cv = float(np.mean(_blend_fold_scores(oofs, [w for _, w, _ in fitted], data)))
    if not is_better(data.metric, cv, lead.cv_score):
        return lone, alone
    part = [(run, w / total, fit) for run, w, fit in fitted]
    return part, (
        f"the ensemble's {len(part)} of {chosen} members that could be refit in the time left: CV {cv:.6g} beats "
        f"the best single trial's {lead.cv_score:.6g}"
    )


def extend_to_all_rows(
    artifacts: ArtifactStore,
    job: JobRecord,
    data: JobData,
    fitted: list[tuple[RunRecord, float, dict[str, Any]]],
    wall_end: float | None,
    save_s: float = 0.0,
) -> dict[int, dict[str, Any]]:
    """Refit each member on every row (training + holdout) while the time left allows, cheapest
    first, so the most members learn from every row. Returns the all-rows fits by run id; a member
    left out keeps the fit it has (training rows, or its trial's split), so a refit that runs out of
    time costs only time that nothing else would use: one is tried whenever its estimate fits.
    ``save_s`` is what saving the model took once: saving the final one after these refits takes
    about as long, so they stop that much before the wall."""
    done: dict[int, dict[str, Any]] = {}
    if len(data.y_holdout) == 0:
        return done
    grow = (len(data.y) + len(data.y_holdout)) / max(len(data.y), 1)
    room = SAFETY_S + max(FINALIZE_SAVE_S, SAVE_MARGIN * save_s)
    for run in sorted((r for r, _, _ in fitted), key=lambda r: refit_estimate(r, data)):
        left = wall_end - room - time.monotonic() if wall_end is not None else float("inf")
        if ALL_ROWS_MARGIN * grow * refit_estimate(run, data) > left:
            continue
        # Room to save the model after it; a refit still running then is killed, not truncated.
        deadline = (wall_end - room) if wall_end is not None else time.monotonic() + 7 * 24 * 3600.0
        key = f"jobs/{job.id}/members/trial-{run.trial_number}.all-rows.joblib"
        cap = max(1.0, FIT_CAP_FACTOR * grow * refit_estimate(run, data))
        try:
            done[run.id] = run_in_child(
                fit_all_rows,
                (data, run.family, run.params, str(artifacts.root), key, deadline, cap, fold_models(run)),
                deadline,
            )
        except (ChildTimeout, ChildCrashed, ChildError):
            continue
    return done


def calibrate(artifacts: ArtifactStore, data: JobData, fitted: list[tuple[RunRecord, float, dict[str, Any]]]) -> float:
    """The temperature of the final classifier, fitted on its members' blended out-of-fold
    probabilities (1.0 for regression, or when scaling does not help)."""
    if data.task == "regression":
        return 1.0
    rows = data.validated
    oofs = [_load_oof(artifacts, run.oof_uri or "")[rows] for run, _, _ in fitted]
    blended = ensemble.blend(oofs, [w for _, w, _ in fitted])
    return fit_temperature(blended, data.y[rows], evidence_floor(len(rows), data.n_classes))


def finalize_job(store: Store, artifacts: ArtifactStore, ctx: Any, wall_end: float | None) -> JobRecord:
    """Ensemble selection, refit, calibration, holdout metrics, artifact and model version; ends
    with the promotion policy. ``ctx`` is the job's :class:`automl.context.JobContext`."""
    from automl.promotion import apply_promotion

    data, spec, job = ctx.data, ctx.spec, store.get_job(ctx.job.id)
    metric = data.metric
    existing = store.version_for_job(job.id)
    if existing is not None:  # a finalizer that died after registering: the version stands
        if "promotion" not in (job.summary or {}):
            apply_promotion(store, artifacts, ctx, existing)
        return store.get_job(job.id)
    ranked = ranked_runs(store.list_runs(job.id), metric.greater_is_better)
    if not ranked:
        raise NoSuccessfulTrial(
            "no trial finished successfully, so there is no model to register",
            hint="see the errors with `automl leaderboard JOB_ID`; raise the budget or change candidates",
        )
    time_left = None if wall_end is None else wall_end - time.monotonic() - SAFETY_S - FINALIZE_SAVE_S
    selection = choose_members(store, artifacts, job.id, data, spec, ranked, time_left)
    refitted = refit_members(artifacts, job, data, selection, ranked, wall_end)
    fitted = refitted.fitted
    for run, _, out in fitted:
        store.set_run_holdout(run.id, metric.score(data.y_holdout, out["holdout"]))
    use_ensemble = len(fitted) > 1
    weights = [w for _, w, _ in fitted]
    temperature = calibrate(artifacts, data, fitted)
    final_pred = (
        ensemble.blend([o["holdout"] for _, _, o in fitted], weights) if use_ensemble else fitted[0][2]["holdout"]
    )
    floor = evidence_floor(len(data.validated), data.n_classes)
    if data.task != "regression":
        final_pred = scale(final_pred, temperature, floor)
    holdout_score = float(metric.score(data.y_holdout, final_pred))
    if selection.ensemble_run is not None and use_ensemble:
        store.set_run_holdout(selection.ensemble_run.id, holdout_score)
    writer = ModelWriter(artifacts, job, data, weights, (temperature, floor))
    # The model that earned the holdout score is saved first: how long that took is what the final
    # model's save needs after the all-rows refits (a 26-class boosting ensemble: 5 s for two saves).
    with openmp_single_threaded():  # this process may fork trial children later (a fleet worker)
        started = time.monotonic()
        evaluation = writer.save(f"{writer.base}/evaluation.joblib", [out for _, _, out in fitted])
        save_s = time.monotonic() - started
    all_rows = extend_to_all_rows(artifacts, job, data, fitted, wall_end, save_s)
    version = register(store, writer, fitted, all_rows, selection, use_ensemble, holdout_score, evaluation)
    reason = refitted.reason or selection.reason
    summarise(store, job, data, selection, fitted, all_rows, use_ensemble, version, reason, temperature, final_pred)
    apply_promotion(store, artifacts, ctx, version)
    record_reference(store, artifacts, version, data, final_pred, wall_end)
    return store.get_job(job.id)


REFERENCE_S = 1.5  # what storing the monitoring reference may take (measured well under 1 s)


def record_reference(
    store: Store,
    artifacts: ArtifactStore,
    version: ModelVersionRecord,
    data: JobData,
    holdout_predictions: np.ndarray,
    wall_end: float | None,
) -> None:
    """Store what monitoring compares new rows against (training rows, holdout predictions). When
    the wall is too close, or it fails, it is computed on the first `automl monitor` instead; the
    job's summary says which."""
    from automl.monitoring.monitor import store_reference

    if wall_end is not None and wall_end - time.monotonic() < REFERENCE_S:
        store.merge_job_summary(
            version.job_id, {"monitor_reference": "deferred to the first `automl monitor` (no time left)"}
        )
        return
    try:
        store_reference(store, artifacts, version, data.X, holdout_predictions, data.classes, data.seed)
    except Exception as exc:  # monitoring must never cost the job its registered model
        store.merge_job_summary(
            version.job_id, {"monitor_reference": f"deferred to the first `automl monitor` ({exc})"}
        )
        return
    store.merge_job_summary(version.job_id, {"monitor_reference": "stored"})


class ModelWriter:
    """Saves a job's model (one member, or a voting ensemble of them, calibrated) from its members'
    fitted artifacts, loading each member once however many saved models hold it."""

    def __init__(
        self,
        artifacts: ArtifactStore,
        job: JobRecord,
        data: JobData,
        weights: list[float],
        calibration: tuple[float, float],
    ) -> None:
        self.artifacts, self.job, self.data = artifacts, job, data
        self.weights, self.calibration = weights, calibration
        self.base = f"models/{job.model_name}/job-{job.id}"
        self._loaded: dict[str, Any] = {}

    def _member(self, out: dict[str, Any]) -> Any:
        if out["key"] not in self._loaded:
            self._loaded[out["key"]] = self.artifacts.get_object(out["key"], out["sha256"])
        return self._loaded[out["key"]]

    def save(self, key: str, members: list[dict[str, Any]]) -> tuple[str, str]:
        """Write the model made of ``members`` at ``key``; returns (key, sha256)."""
        if self.job.task == "regression" and len(members) == 1:
            # One regression member is the model as it stands: copy its bytes, don't load and
            # re-save them (a large forest costs seconds each way, past the wall).
            bytes_ = self.artifacts.get_bytes(members[0]["key"], members[0]["sha256"])
            return key, self.artifacts.put_bytes(key, bytes_)
        estimators = [self._member(m) for m in members]
        model = assemble(self.job.task, estimators, self.weights, self.data.classes, *self.calibration)
        return key, self.artifacts.put_object(key, model)


def register(
    store: Store,
    writer: ModelWriter,
    fitted: list[tuple[RunRecord, float, dict[str, Any]]],
    all_rows: dict[int, dict[str, Any]],
    selection: Selection,
    use_ensemble: bool,
    holdout_score: float,
    evaluation: tuple[str, str],
) -> ModelVersionRecord:
    """Record the job's model version: the final model (each member refit on every row where that
    was done) and, when it differs, the ``evaluation`` model (saved already) that produced the
    holdout score, with its holdout metrics. With no all-rows refit the evaluation model is the
    final one, and it is moved into place."""
    job, data = writer.job, writer.data
    model_key = f"{writer.base}/model.joblib"
    evaluation_key: str | None = None
    evaluation_sha: str | None = None
    if all_rows:
        with openmp_single_threaded():  # this process may fork trial children later (a fleet worker)
            _, sha = writer.save(model_key, [all_rows.get(run.id, out) for run, _, out in fitted])
        evaluation_key, evaluation_sha = evaluation
    else:
        writer.artifacts.move(evaluation[0], model_key)
        sha = evaluation[1]
    winner = selection.ensemble_run if (use_ensemble and selection.ensemble_run is not None) else fitted[0][0]
    return store.create_model_version(
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
            evaluation_uri=evaluation_key,
            evaluation_sha256=evaluation_sha,
        )
    )


def _trained_on(fitted: list[tuple[RunRecord, float, dict[str, Any]]], all_rows: dict[int, Any], data: JobData) -> str:
    """Which rows the registered model learned from, in words (the model card shows it)."""
    return _rows_of(fitted, all_rows, data) + _bagged(fitted, all_rows, data)


def _bagged_in_final(run: RunRecord, out: dict[str, Any], all_rows: dict[int, Any]) -> bool:
    """Whether ``run``'s fit in the registered model (its all-rows fit, else ``out``) carries its
    trial's fold models."""
    return bool(all_rows.get(run.id, out).get("bagged"))


def _bagged(fitted: list[tuple[RunRecord, float, dict[str, Any]]], all_rows: dict[int, Any], data: JobData) -> str:
    """The clause on members averaged with their trial's fold models (automl.model.FoldBag)."""
    bagged = [run for run, _, out in fitted if _bagged_in_final(run, out, all_rows)]
    if not bagged:
        return ""
    which = "its member" if len(fitted) == 1 else f"{len(bagged)} of its {len(fitted)} members"
    return (
        f"; {which} also average{'s' if len(bagged) == 1 else ''} the {len(data.folds)} models of "
        "their trial's cross-validation folds (each fitted on the other folds' training rows)"
    )


def _rows_of(fitted: list[tuple[RunRecord, float, dict[str, Any]]], all_rows: dict[int, Any], data: JobData) -> str:
    """The rows the registered model's members learned from: every row, the training rows, or (a
    kept trial fit, holdout scheme) their trial's training split, counted where they differ."""
    train, hold = len(data.y), len(data.y_holdout)
    split = f"{len(data.folds[0][0]):,} rows of its trial's training split"
    reused = sum(1 for _, _, out in fitted if out.get("reused"))
    rows = f"{train:,} training rows" if not reused else split
    if 0 < reused < len(fitted):
        rows = f"{train:,} training rows, and for {reused} of {len(fitted)} members the {split}"
    if all_rows and len(all_rows) == len(fitted):
        return (
            f"every row: {train + hold:,} ({train:,} training + {hold:,} holdout); the holdout score is from "
            f"a fit on the {rows}"
        )
    if all_rows:
        left = [out for run, _, out in fitted if run.id not in all_rows]
        kept = sum(1 for out in left if out.get("reused"))
        groups = [f"{len(left) - kept} on the {train:,} training rows"] if len(left) > kept else []
        groups += [f"{kept} on the {split}"] if kept else []
        return (
            f"{len(all_rows)} of {len(fitted)} members on every row ({train + hold:,}), {' and '.join(groups)} "
            "(no time left to refit them)"
        )
    return f"the {rows} (no time left to refit on all {train + hold:,} rows)"


def summarise(
    store: Store,
    job: JobRecord,
    data: JobData,
    selection: Selection,
    fitted: list[tuple[RunRecord, float, dict[str, Any]]],
    all_rows: dict[int, dict[str, Any]],
    use_ensemble: bool,
    version: ModelVersionRecord,
    reason: str,
    temperature: float,
    final_pred: np.ndarray,
) -> None:
    """One record of what happened: the final model and why, the best trial as ranked, the
    ensemble (used or not), holdout metrics, calibration and the validation scheme."""
    report = holdout_report(job.task, data.y_holdout, final_pred)
    scalar = {k: float(v) for k, v in report.items() if isinstance(v, int | float)}
    store.add_metrics(
        [NewMetric(name=k, value=v, split="holdout", model_version_id=version.id) for k, v in scalar.items()]
    )
    trials = [r for r in store.list_runs(job.id) if r.kind == "trial"]
    best, ens = selection.best, selection.ensemble_run
    lead = fitted[0][0]
    summary = {
        "final": "ensemble" if use_ensemble else "single",
        "final_reason": reason,
        "model": {
            "run_id": version.run_id,
            "members": [
                {
                    "run_id": r.id,
                    "trial": r.trial_number,
                    "family": r.family,
                    "weight": w,
                    "trained_on": "every row (training + holdout)"
                    if r.id in all_rows
                    else ("the trial's training split" if o.get("reused") else "every training row"),
                    "fold_models": len(data.folds) if _bagged_in_final(r, o, all_rows) else 0,
                }
                for r, w, o in fitted
            ],
            "family": "ensemble" if use_ensemble else lead.family,
            "trial": None if use_ensemble else lead.trial_number,
        },
        "best": {
            "run_id": best.id,
            "trial": best.trial_number,
            "family": best.family,
            "params": best.params,
            "cv_score": best.cv_score,
            "cv_std": best.cv_std,
        },
        "ensemble": None
        if ens is None
        else {
            "run_id": ens.id,
            "cv_score": ens.cv_score,
            "members": [
                {"run_id": r.id, "trial": r.trial_number, "family": r.family, "weight": w} for r, w, _ in fitted
            ]
            if use_ensemble
            else ens.members,
            "used": use_ensemble,
        },
        "holdout": report,
        "holdout_score": version.holdout_score,
        "metric": job.metric,
        "calibration": None
        if data.task == "regression"
        else {
            "method": "temperature",
            "temperature": temperature,
            "probability_floor": evidence_floor(len(data.validated), data.n_classes),
        },
        "validation": data.validation.to_dict(),
        "holdout_split": data.split.to_dict(),
        "trained_on": _trained_on(fitted, all_rows, data),
        "version": {
            "id": version.id,
            "model_name": version.model_name,
            "version": version.version,
            "artifact_uri": version.artifact_uri,
            "sha256": version.artifact_sha256,
        },
        "trials": {s: sum(1 for r in trials if r.status == s) for s in ("succeeded", "failed", "pruned", "timeout")},
        "classes": data.classes,
    }
    store.merge_job_summary(job.id, summary)
